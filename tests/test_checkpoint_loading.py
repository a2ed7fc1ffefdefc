"""Checkpoints this project writes load where users load them: after ``import hypervq_fairseq`` alone,
with fairseq's own ``load_model_ensemble_and_task``, and in fairseq's command-line tools with
``--user-dir`` pointing at the package. Each check runs in a fresh interpreter, so nothing this
test session imported or registered can help."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

import hypervq_fairseq
from helpers.runs import quiet_env, run_console

PACKAGE_DIR = Path(hypervq_fairseq.__file__).resolve().parent

LOAD = """
import sys
{first}
from fairseq import checkpoint_utils
models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([sys.argv[1]])
model = models[0]
inner = getattr(getattr(model, "w2v_encoder", None), "w2v_model", model)
print("LOADED", cfg.model._name, type(model).__name__, type(inner).__name__,
      type(getattr(inner, "quantizer", None)).__name__, type(task).__name__)
"""


def load_in_fresh_interpreter(checkpoint, first: str) -> list:
    proc = subprocess.run([sys.executable, "-c", LOAD.format(first=first), str(checkpoint)], capture_output=True,
                          text=True, env=quiet_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("LOADED"))
    return line.split()[1:]


@pytest.mark.slow
@pytest.mark.parametrize("first", ["import hypervq_fairseq", "import fairseq; import hypervq_fairseq"])
def test_pretraining_checkpoint_loads_after_import(pretrained_checkpoint, first):
    name, model, inner, quantizer, task = load_in_fresh_interpreter(pretrained_checkpoint, first)
    assert (name, model, quantizer) == ("hypervq_wav2vec2", "HyperVQWav2Vec2Model", "HyperbolicVectorQuantizer")
    assert task == "HyperVQAudioPretrainingTask"


@pytest.mark.slow
def test_finetuned_ctc_checkpoint_loads_after_import(ctc_checkpoint):
    name, model, inner, quantizer, task = load_in_fresh_interpreter(ctc_checkpoint, "import hypervq_fairseq")
    assert (name, model, task) == ("wav2vec_ctc", "Wav2VecCtc", "AudioFinetuningTask")
    # the encoder is the HyperVQ pretraining model, its quantizer removed by fine-tuning
    assert (inner, quantizer) == ("HyperVQWav2Vec2Model", "NoneType")


@pytest.mark.slow
def test_fairseq_validate_with_user_dir(ctc_checkpoint, finetune_manifest, tmp_path):
    proc = run_console("fairseq-validate", finetune_manifest, "--user-dir", PACKAGE_DIR, "--path", ctc_checkpoint,
                       "--task", "audio_finetuning", "--labels", "ltr", "--valid-subset", "valid", "--criterion", "ctc",
                       "--post-process", "letter", "--cpu", "--max-tokens", "400000",
                       "--required-batch-size-multiple", "1", cwd=tmp_path)
    assert re.search(r"\| wer [0-9.]+ \|", proc.stdout + proc.stderr), (proc.stdout + proc.stderr)[-3000:]
