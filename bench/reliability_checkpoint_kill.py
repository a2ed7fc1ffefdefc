"""Kill checkpoint writes with SIGKILL and count the half-written checkpoints they leave.

Two experiments, each for fairseq's stock copy and for the plugin's atomic copy:

1. copy level: a process copies a checkpoint-sized file onto ``checkpoint_last.pt`` in a loop
   (``shutil.copyfile``, which is what fairseq's ``PathManager.copy`` does without iopath, vs
   ``atomic_copy``) and is killed as soon as a partial file is visible; we count destinations
   that are neither the old nor the new content;
2. training level: the real ``fairseq-hydra-train`` on the tiny corpus saving every update is
   killed at a random moment; every ``checkpoint*.pt`` left behind is loaded with ``torch.load``,
   and the run is restarted (stock task ``audio_pretraining`` vs ``hypervq_audio_pretraining``).

    python bench/reliability_checkpoint_kill.py --manifest MANIFEST_DIR --out runs/reliability/kill.json
    python bench/reliability_checkpoint_kill.py --manifest MANIFEST_DIR --copy-trials 50 --train-trials 10
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import torch

from hypervq_fairseq import files as atomic_files

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from helpers.runs import quiet_env, run, train_command  # noqa: E402  (the tests' driver of real runs)

COPIER = textwrap.dedent("""
    import importlib.util, shutil, sys
    spec = importlib.util.spec_from_file_location("atomic_files", sys.argv[4])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    copy = module.atomic_copy if sys.argv[3] == "atomic" else shutil.copyfile
    print("ready", flush=True)
    while True:
        copy(sys.argv[1], sys.argv[2])
""")


def copy_trials(kind: str, trials: int, size_mb: int, folder: str) -> dict:
    src, dst = os.path.join(folder, "checkpoint_1_9.pt"), os.path.join(folder, "checkpoint_last.pt")
    new = os.urandom(size_mb * 1024 * 1024)
    with open(src, "wb") as f:
        f.write(new)
    torn = landed = 0
    for _ in range(trials):
        with open(dst, "wb") as f:
            f.write(b"old")
        proc = subprocess.Popen([sys.executable, "-c", COPIER, src, dst, kind, atomic_files.__file__],
                                stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            names = [n for n in os.listdir(folder) if n.endswith(".tmp")] if kind == "atomic" else ["checkpoint_last.pt"]
            sizes = [os.path.getsize(os.path.join(folder, n)) for n in names if os.path.exists(os.path.join(folder, n))]
            if any(3 < s < len(new) for s in sizes):
                proc.send_signal(signal.SIGKILL)
                landed += 1
                break
        else:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        with open(dst, "rb") as f:
            content = f.read()
        torn += content not in (b"old", new)
        for n in os.listdir(folder):
            if n.endswith(".tmp"):
                os.unlink(os.path.join(folder, n))
    return {"copy": kind, "trials": trials, "killed_mid_copy": landed, "torn_destination": torn}


def train_trials(task: str, trials: int, manifest: str, folder: str, seed: int) -> dict:
    rng = random.Random(seed)
    overrides = [f"task._name={task}", "optimization.max_update=12", "checkpoint.save_interval_updates=1",
                 "checkpoint.keep_interval_updates=2", "dataset.validate_interval_updates=1000"]
    bad_files, failed_resumes, killed = [], 0, 0
    for t in range(trials):
        save = os.path.join(folder, f"{task}-{t}")
        cmd = train_command(manifest, save, overrides)
        proc = subprocess.Popen(cmd, cwd=folder, env=quiet_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # wait for the first checkpoint, then kill at a random moment of the following updates
        deadline = time.monotonic() + 300
        while not os.path.exists(os.path.join(save, "checkpoint_last.pt")) and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 2.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
        for name in sorted(os.listdir(save)):
            if name.endswith(".pt"):
                try:
                    torch.load(os.path.join(save, name), map_location="cpu", weights_only=False)
                except Exception as e:  # noqa: BLE001 - any failure to load is what we count
                    bad_files.append(f"{task}-{t}/{name}: {type(e).__name__}: {str(e)[:80]}")
        again = run(cmd, cwd=folder, timeout=600)
        failed_resumes += again.returncode != 0
    return {"task": task, "trials": trials, "killed": killed, "unloadable_checkpoints": bad_files,
            "failed_resumes": failed_resumes}


def main(argv=None):
    head, _, examples = __doc__.rpartition("\n\n    python ")
    p = argparse.ArgumentParser(description=head, epilog="examples:\n  python " + examples.replace("\n    ", "\n  "),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", required=True, help="folder with train.tsv/valid.tsv (e.g. the tiny demo corpus)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--copy-trials", type=int, default=30)
    p.add_argument("--copy-mb", type=int, default=64, help="size of the copied file in MiB")
    p.add_argument("--train-trials", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    results = {"copy": [], "train": []}
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("stock", "atomic"):
            sub = os.path.join(folder, f"copy-{kind}")
            os.makedirs(sub)
            results["copy"].append(copy_trials(kind, args.copy_trials, args.copy_mb, sub))
            print(json.dumps(results["copy"][-1]), flush=True)
        for task in ("audio_pretraining", "hypervq_audio_pretraining"):
            if args.train_trials:
                results["train"].append(train_trials(task, args.train_trials, args.manifest, folder, args.seed))
                print(json.dumps(results["train"][-1]), flush=True)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(results, f, indent=1)
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
