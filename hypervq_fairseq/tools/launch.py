"""hypervq-pretrain: launch wav2vec 2.0 pretraining (HyperVQ or the Gumbel baseline) at the paper's batch.

    # one node, 8 GPUs: update_freq 8 emulates the paper's 64 GPUs
    hypervq-pretrain --data manifests/librispeech --save-dir ckpt/hypervq --gpus 8
    # two nodes of 8 GPUs through torchrun (run once on each node, --node-rank 0 and 1)
    hypervq-pretrain --data manifests/librispeech --save-dir ckpt/hypervq --gpus 8 --nnodes 2 --node-rank 0 \\
        --master-addr node0.example --master-port 29500
    # Slurm: 4 nodes x 8 GPUs through srun (inside sbatch/salloc, or srun allocates)
    hypervq-pretrain --data manifests/librispeech --save-dir ckpt/hypervq --gpus 8 --nnodes 4 --slurm
    # print the exact command instead of running it
    hypervq-pretrain --data manifests/librispeech --save-dir ckpt/gumbel --quantizer gumbel --gpus 4 --dry-run

Why a launcher: the paper trains on 64 GPUs; fairseq emulates a larger world by accumulating
gradients (``optimization.update_freq``), so on N GPUs each update must sum 64/N micro-batches
for the learning-rate schedule and the batch size to mean what the paper's do. The launcher
computes that factor (and refuses an N that does not divide the target), keeps one save
directory so that fairseq resumes from its ``checkpoint_last.pt`` (and says so), and builds the
torchrun or srun line for fairseq's distributed initialisation:

- one node: ``fairseq-hydra-train`` spawns one process per GPU itself
  (``distributed_training.distributed_world_size=N``);
- torchrun: sets MASTER_ADDR/PORT, WORLD_SIZE, RANK, which fairseq reads (``env://``);
- Slurm: one task per GPU under ``srun``; fairseq reads the SLURM_* variables and rendezvous on
  the first node at ``distributed_training.distributed_port``.

Everything after ``--`` is passed to fairseq-hydra-train as Hydra overrides. Every number is
checked when the command line is read (``--gpus 0`` or ``--master-port 70000`` stop there, with
the allowed range); an impossible combination (a GPU count that cannot emulate the target, a node
rank beyond ``--nnodes``) exits with status 2 and one line saying why.
"""
from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from ..cli import add_debug_flag, int_at_least, port, run
from ..errors import InputError

PAPER_GPUS = 64
CONFIGS = {"hypervq": "hypervq_w2v2", "gumbel": "gumbel_w2v2"}


EXAMPLES = """examples:
  hypervq-pretrain --data manifests/librispeech --save-dir ckpt/hypervq --gpus 8
  hypervq-pretrain --data manifests/librispeech --save-dir ckpt/hypervq --gpus 8 --nnodes 2 --node-rank 0 \\
      --master-addr node0.example --master-port 29500
  hypervq-pretrain --data manifests/librispeech --save-dir ckpt/hypervq --gpus 8 --nnodes 4 --slurm
  hypervq-pretrain --data manifests/librispeech --save-dir ckpt/gumbel --quantizer gumbel --gpus 4 --dry-run
  hypervq-pretrain --data manifests/librispeech --save-dir ckpt/hypervq --gpus 8 -- optimization.max_update=100000
"""


class LaunchError(InputError):
    """An impossible launch request (GPU count, node rank, paths)."""


def update_freq_for(world_size: int, target_gpus: int = PAPER_GPUS) -> int:
    """Gradient-accumulation factor so that ``world_size`` GPUs emulate ``target_gpus``."""
    if world_size < 1:
        raise LaunchError(f"the number of GPUs must be >= 1, got {world_size}")
    if target_gpus % world_size:
        divisors = [d for d in range(1, target_gpus + 1) if target_gpus % d == 0]
        raise LaunchError(
            f"{world_size} GPUs cannot emulate the {target_gpus}-GPU batch: {target_gpus} is not divisible by "
            f"{world_size}. Use a GPU count in {divisors}, or set --update-freq yourself.")
    return target_gpus // world_size


def _fairseq_hydra_train() -> str:
    """The fairseq-hydra-train script next to this interpreter, else the one on PATH."""
    local = Path(sys.executable).with_name("fairseq-hydra-train")
    if local.exists():
        return str(local)
    found = shutil.which("fairseq-hydra-train")
    if found is None:
        raise LaunchError("fairseq-hydra-train not found: install fairseq (pip install -e . installs fairseq-fixed)")
    return found


def build_command(args) -> tuple:
    """(argv, notes) for the requested launch; reads nothing but ``checkpoint_last.pt``'s presence."""
    world = args.gpus * args.nnodes
    if args.cpu:
        if args.nnodes != 1 or args.slurm:
            raise LaunchError("--cpu runs one process on this machine: drop --nnodes/--slurm")
        world = 1
    update_freq = args.update_freq or update_freq_for(world, args.target_gpus)
    if not 0 <= args.node_rank < args.nnodes:
        raise LaunchError(f"--node-rank must be in [0, {args.nnodes - 1}], got {args.node_rank}")
    if args.nnodes > 1 and not args.slurm and not args.master_addr:
        raise LaunchError("multi-node through torchrun needs --master-addr (the address of the node with rank 0)")

    save_dir = Path(args.save_dir).resolve()
    data = Path(args.data).resolve()
    notes = [f"world size {world} x update_freq {update_freq} = {world * update_freq} GPU batches per update"]
    last = save_dir / "checkpoint_last.pt"
    if last.exists():
        notes.append(f"resuming from {last} (fairseq restores model, optimizer and update count)")
    else:
        notes.append(f"starting fresh; checkpoints go to {save_dir} (rerun the same command to resume)")

    config = CONFIGS.get(args.quantizer, args.quantizer) if args.config_name is None else args.config_name
    hydra = [f"--config-name={config}"]
    if args.config_dir:
        hydra.insert(0, f"--config-dir={Path(args.config_dir).resolve()}")
    overrides = [
        f"task.data={data}",
        f"checkpoint.save_dir={save_dir}",
        "checkpoint.restore_file=checkpoint_last.pt",
        f"optimization.update_freq=[{update_freq}]",
        f"distributed_training.distributed_world_size={world}",
    ]
    if args.tensorboard:
        overrides.append(f"common.tensorboard_logdir={save_dir / 'tb'}")
    if args.cpu:
        overrides.append("common.cpu=true")
    try:
        train = _fairseq_hydra_train()
    except LaunchError:
        if not args.dry_run:
            raise
        train = "fairseq-hydra-train"
    if args.slurm:
        overrides.append(f"distributed_training.distributed_port={args.master_port}")
        launcher = ["srun", f"--nodes={args.nnodes}", f"--ntasks-per-node={args.gpus}",
                    f"--gpus-per-node={args.gpus}", f"--cpus-per-task={args.cpus_per_task}"]
        notes.append("Slurm: one task per GPU; fairseq rendezvous on the first node of the allocation")
        argv = launcher + [train]
    elif args.nnodes > 1:
        argv = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={args.nnodes}", f"--nproc-per-node={args.gpus}",
                f"--node-rank={args.node_rank}", f"--master-addr={args.master_addr}",
                f"--master-port={args.master_port}", train]
        notes.append(f"torchrun: this is node {args.node_rank} of {args.nnodes}; run the same command on every node")
    else:
        argv = [train]
    return argv + hydra + overrides + list(args.overrides), notes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hypervq-pretrain",
        description="Launch wav2vec 2.0 pretraining with HyperVQ (or the Gumbel baseline) through "
                    "fairseq-hydra-train, emulating the paper's 64-GPU batch with update_freq = 64 / GPUs.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder with train.tsv and valid.tsv (hypervq-manifest --out)")
    p.add_argument("--save-dir", required=True, help="checkpoint folder; rerunning with the same one resumes")
    p.add_argument("--quantizer", default="hypervq", choices=sorted(CONFIGS),
                   help="hypervq (config hypervq_w2v2) or gumbel (gumbel_w2v2, the stock baseline)")
    p.add_argument("--config-name", default=None, help="another Hydra config name (overrides --quantizer)")
    p.add_argument("--config-dir", default=None, help="folder holding --config-name (default: the installed configs)")
    p.add_argument("--gpus", type=int_at_least(1, "GPUs per node"), default=1, help="GPUs per node (default 1)")
    p.add_argument("--nnodes", type=int_at_least(1, "number of nodes"), default=1, help="number of nodes (default 1)")
    p.add_argument("--node-rank", type=int_at_least(0, "0 is the first node"), default=0,
                   help="rank of this node, torchrun only (default 0)")
    p.add_argument("--master-addr", default=None, help="address of node 0, torchrun only")
    p.add_argument("--master-port", type=port(), default=29500,
                   help="rendezvous port (torchrun --master-port; Slurm: distributed_training.distributed_port)")
    p.add_argument("--slurm", action="store_true", help="launch through srun, one task per GPU")
    p.add_argument("--cpus-per-task", type=int_at_least(1, "CPUs per GPU task"), default=8,
                   help="srun --cpus-per-task (default 8)")
    p.add_argument("--target-gpus", type=int_at_least(1, "GPU count to emulate"), default=PAPER_GPUS,
                   help="GPU count to emulate (paper: 64)")
    p.add_argument("--update-freq", type=int_at_least(1, "micro-batches summed per update"), default=None,
                   help="set the accumulation factor yourself")
    p.add_argument("--no-tensorboard", dest="tensorboard", action="store_false",
                   help="do not log to SAVE_DIR/tb")
    p.add_argument("--cpu", action="store_true", help="train on CPU in one process (tests, the demo)")
    p.add_argument("--dry-run", action="store_true", help="print the command and exit")
    add_debug_flag(p)
    p.add_argument("overrides", nargs="*", help="Hydra overrides for fairseq-hydra-train (after --)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cmd, notes = build_command(args)
    except LaunchError as e:
        print(f"hypervq-pretrain: error: {e}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"[hypervq-pretrain] {note}", file=sys.stderr)
    print(shlex.join(cmd), flush=True)
    if args.dry_run:
        return 0

    def work():
        from ..files import check_writable_folder

        Path(check_writable_folder(args.save_dir, what="--save-dir")).mkdir(parents=True, exist_ok=True)
        return subprocess.call(cmd)

    return run("hypervq-pretrain", work, args, interrupted="interrupted; rerun the same command to resume")


if __name__ == "__main__":
    sys.exit(main())
