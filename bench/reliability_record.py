"""Record what fairseq-hydra-train does with each bad input, bad config and precision, stock vs plugin.

Every case is a real ``fairseq-hydra-train`` run on a 4-file manifest (three good utterances of
the tiny corpus plus the damaged one, all in the first batch so that the stock task reads the bad
file at once), with the stock task ``audio_pretraining`` and with ``hypervq_audio_pretraining``.
For each run we keep the exit code, the error line the user reads, the file and function it was
raised from, and the last training losses. The table goes into docs/reliability.md.

    python bench/reliability_record.py --manifest MANIFEST_DIR --out runs/reliability/record.json
    python bench/reliability_record.py --manifest MANIFEST_DIR --only stereo,nan_samples --tasks hypervq_audio_pretraining
"""
import argparse
import json
import math
import os
import re
import shutil
import sys
import tempfile

import numpy as np
import soundfile as sf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from helpers.runs import run, train_command  # noqa: E402  (the tests' driver of real runs)

ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Interrupt)|AssertionError|Exception)(: .*)?$")
FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+), in (\S+)')


def _truncate(path, fraction=0.5):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: int(len(data) * fraction)])


def audio_cases(wav):
    """name -> (file name, manifest frames, writer); writers get the destination path."""
    n = len(wav)
    return {
        "garbage_bytes": ("garbage.flac", n, lambda p: open(p, "wb").write(os.urandom(5000))),
        "zero_bytes": ("empty.flac", 0, lambda p: open(p, "wb").close()),
        "zero_frames": ("zero.wav", 0, lambda p: sf.write(p, np.zeros(0, "float32"), 16000, format="WAV")),
        "rate_8k": ("rate8k.flac", n // 2, lambda p: sf.write(p, wav[::2], 8000)),
        "stereo": ("stereo.flac", n, lambda p: sf.write(p, np.stack([wav, wav], 1), 16000)),
        "truncated_wav": ("cut.wav", n, lambda p: (sf.write(p, wav, 16000), _truncate(p))),
        "truncated_flac": ("cut.flac", n, lambda p: (sf.write(p, wav, 16000), _truncate(p))),
        "corrupt_flac_data": ("corrupt.flac", n, lambda p: (sf.write(p, wav, 16000), _scramble(p))),
        "nan_samples": ("nan.wav", n, lambda p: sf.write(p, _with_nan(wav), 16000, subtype="FLOAT")),
        "missing_file": ("missing.flac", n, None),
    }


def _scramble(path):
    data = bytearray(open(path, "rb").read())
    data[100:] = os.urandom(len(data) - 100)
    open(path, "wb").write(bytes(data))


def _with_nan(wav):
    out = wav.copy()
    out[1000:1010] = np.nan
    return out


MANIFEST_CASES = {
    "line_without_frames": "good0.flac",
    "frames_not_a_number": "good0.flac\tmany",
}

CONFIG_CASES = {
    "negative_curvature": ["model.hyperbolic_curvature=-1.0"],
    "groups_not_dividing_vq_dim": ["model.latent_groups=3"],
    "one_code": ["model.latent_vars=1"],
}

PRECISION_CASES = {
    "fp16": ["common.fp16=true"],
    "fp16_no_flatten_grads": ["common.fp16=true", "common.fp16_no_flatten_grads=true"],
    "memory_efficient_fp16": ["common.fp16=true", "common.memory_efficient_fp16=true"],
    "bf16": ["common.bf16=true"],
    "amp": ["common.amp=true"],
}


def build_manifest(folder, source_manifest, extra_line=None, writer=None, name=None):
    with open(os.path.join(source_manifest, "train.tsv")) as f:
        root = f.readline().strip()
        rows = [line.rstrip("\n").split("\t") for line in f][:3]
    audio = os.path.join(folder, "audio")
    os.makedirs(audio, exist_ok=True)
    lines = [audio]
    for i, (rel, frames) in enumerate(rows):
        shutil.copy(os.path.join(root, rel), os.path.join(audio, f"good{i}.flac"))
        lines.append(f"good{i}.flac\t{frames}")
    if writer is not None:
        writer(os.path.join(audio, name))
    if extra_line:
        lines.append(extra_line)
    data = os.path.join(folder, "manifest")
    os.makedirs(data, exist_ok=True)
    for split in ("train", "valid"):
        with open(os.path.join(data, f"{split}.tsv"), "w") as f:
            f.write("\n".join(lines) + "\n")
    return data, os.path.join(root, rows[0][0])


def summarize(log) -> dict:
    lines = log.text.splitlines()
    at = next((i for i in range(len(lines) - 1, -1, -1) if ERROR_LINE.match(lines[i].strip())), None)
    error = None
    if at is not None:  # a multi-line message: keep its next lines (the files it names)
        tail = [l.strip() for l in lines[at + 1:at + 4] if l.startswith("  ") and not FRAME.match(l)]
        error = " / ".join([lines[at].strip(), *tail])
    frames = [FRAME.match(l) for l in lines]
    frames = [m for m in frames if m]
    where = None
    if frames and log.returncode != 0:
        path, line, func = frames[-1].groups()
        where = f"{'/'.join(path.split(os.sep)[-2:])}:{line} in {func}"
    losses = [float(r["loss"]) for r in log.records.get("train_inner", [])]
    return {"returncode": log.returncode, "error": error[:400] if error else None, "raised_in": where,
            "updates": len(losses), "last_loss": losses[-1] if losses else None,
            "finite": all(math.isfinite(v) for v in losses) if losses else None}


def main(argv=None):
    head, _, examples = __doc__.rpartition("\n\n    python ")
    p = argparse.ArgumentParser(description=head, epilog="examples:\n  python " + examples.replace("\n    ", "\n  "),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", required=True, help="folder with train.tsv of real 16 kHz speech (tiny corpus)")
    p.add_argument("--out", required=True, help="JSON file for the results (written atomically)")
    p.add_argument("--tasks", default="audio_pretraining,hypervq_audio_pretraining")
    p.add_argument("--only", default=None, help="comma-separated case names")
    args = p.parse_args(argv)
    tasks = args.tasks.split(",")
    only = set(args.only.split(",")) if args.only else None
    results = []
    base = ["optimization.max_update=2", "task.min_sample_size=0", "dataset.max_tokens=200000", "dataset.required_batch_size_multiple=1",
            "task.max_sample_size=48000"]
    with tempfile.TemporaryDirectory() as tmp:
        _, source = build_manifest(os.path.join(tmp, "probe"), args.manifest)
        wav, _ = sf.read(source, dtype="float32")
        cases = []
        for name, (fname, frames, writer) in audio_cases(wav).items():
            cases.append(("bad audio", name, dict(extra_line=f"{fname}\t{frames}", writer=writer, name=fname), []))
        for name, line in MANIFEST_CASES.items():
            cases.append(("manifest", name, dict(extra_line=line), []))
        for name, overrides in CONFIG_CASES.items():
            cases.append(("config", name, {}, overrides))
        for name, overrides in PRECISION_CASES.items():
            cases.append(("precision", name, {}, overrides))
        for kind, name, manifest_kw, overrides in cases:
            if only and name not in only:
                continue
            for task in tasks:
                folder = os.path.join(tmp, f"{name}-{task}")
                data, _ = build_manifest(folder, args.manifest, **manifest_kw)
                cmd = train_command(data, os.path.join(folder, "ckpt"), [f"task._name={task}", *base, *overrides])
                log = run(cmd, cwd=folder, timeout=600)
                row = {"kind": kind, "case": name, "task": task, "overrides": overrides, **summarize(log)}
                results.append(row)
                print(json.dumps(row), flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
