"""Install hypervq_fairseq: the HyperVQ quantizer core, its fairseq glue, tools and vision trainers.

fairseq: the official ``fairseq==0.12.2`` cannot be imported on Python >= 3.11 (a dataclass
with a mutable default; upstream issue 5012). On 3.11+ we depend on ``fairseq-fixed``, a fork
of fairseq's main branch with the 3.11/3.12 fixes that installs as the import package
``fairseq``. Users who already have fairseq (e.g. an editable checkout) set
``HYPERVQ_NO_FAIRSEQ_DEP=1`` so that pip leaves it alone.

torch: any ``torch>=2.1``; no pin here, so GPU users keep their CUDA build. The CPU machines
this project is tested on preinstall the local CPU/x86 wheels in ``scripts/setup.sh``.
"""
import os

from setuptools import find_namespace_packages, find_packages, setup

FAIRSEQ = [
    "fairseq==0.12.2; python_version < '3.11'",
    "fairseq-fixed==0.12.3.1; python_version >= '3.11'",
]

install_requires = [
    "torch>=2.1",
    "geoopt>=0.5.1",
    "numpy",
    "soundfile",
    "sentencepiece",
    "tensorboardX",
    "tensorboard",  # its event-file reader is used by hypervq-plot
    "matplotlib",
    "tqdm",
    "scikit-learn",
    "G722",  # decodes the offline demo speech (Debian's Asterisk G.722 prompts)
    "editdistance",  # fairseq's ctc criterion computes WER with it (not a fairseq dependency)
]
if not os.environ.get("HYPERVQ_NO_FAIRSEQ_DEP"):
    install_requires += FAIRSEQ

# configs/ (YAML only) installs as hypervq_fairseq.configs, one package per folder
CONFIG_PACKAGES = ["hypervq_fairseq.configs"] + [
    "hypervq_fairseq.configs." + d for d in sorted(os.listdir("configs")) if os.path.isdir(os.path.join("configs", d))
    and not d.startswith(("_", "."))
]

setup(
    name="hypervq-fairseq",
    version="0.2.0",
    description="HyperVQ (hyperbolic MLR vector quantization) for fairseq wav2vec 2.0, with vision trainers",
    long_description=open("README.md", encoding="utf-8").read() if os.path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    # hydra_plugins is a namespace package shared with other Hydra plugins (no __init__.py)
    packages=find_packages(include=["hypervq_fairseq", "hypervq_fairseq.*"])
    + find_namespace_packages(include=["hydra_plugins", "hydra_plugins.*"])
    + CONFIG_PACKAGES,
    package_dir={"hypervq_fairseq.configs": "configs"},
    package_data={name: ["*.yaml"] for name in CONFIG_PACKAGES},
    include_package_data=True,
    install_requires=install_requires,
    extras_require={
        "vision": ["torchvision", "imagecorruptions-imaug"],  # imagecorruptions 1.1.2 fails to import (pkg_resources)
        "dev": ["pytest", "mpmath"],  # mpmath: high-precision reference in the core math tests
        # token quality against phones: forced alignment (bundled en-us model) and ABX triplets/DTW
        "units": ["pocketsphinx==5.1.1", "zerospeech-libriabx2==0.9.8", "pandas>=2.2.2"],  # pandas < 2.2.2 breaks on numpy 2
        # hypervq-export-hf: Wav2Vec2Model / Wav2Vec2ForCTC folders (safetensors)
        "hf": ["transformers==5.23.0", "safetensors"],
        # hypervq-decode --lm: flashlight's lexicon beam-search decoder, KenLM included in the wheel
        "decode": ["flashlight-text==0.0.7"],
    },
    entry_points={
        "console_scripts": [
            "hypervq-demo=hypervq_fairseq.tools.demo:main",
            "hypervq-plot=hypervq_fairseq.tools.plot:main",
            "hypervq-manifest=hypervq_fairseq.tools.manifest:main",
            "hypervq-demo-corpus=hypervq_fairseq.tools.demo_corpus:main",
            "hypervq-pretrain=hypervq_fairseq.tools.launch:main",
            "hypervq-tokenize=hypervq_fairseq.tools.tokenize:main",
            "hypervq-codebook-report=hypervq_fairseq.tools.codebook_report:main",
            "hypervq-labels=hypervq_fairseq.tools.labels:main",
            "hypervq-download=hypervq_fairseq.tools.download:main",
            "hypervq-vision=hypervq_fairseq.vision.cli:main",
            "hypervq-align=hypervq_fairseq.tools.align:main",
            "hypervq-unit-eval=hypervq_fairseq.tools.unit_eval:main",
            "hypervq-export-hf=hypervq_fairseq.tools.export_hf:main",
            "hypervq-decode=hypervq_fairseq.tools.decode:main",
            "hypervq-build-lm=hypervq_fairseq.tools.build_lm:main",
        ],
    },
)
