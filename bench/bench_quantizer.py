"""Quantizer alone at wav2vec 2.0 BASE shapes: HyperVQ vs fairseq's GumbelVectorQuantizer vs the floor.

    .venv/bin/python bench/bench_quantizer.py                      # full run, markdown table
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_quantizer.py --threads 1   # steadier on shared CPUs
    .venv/bin/python bench/bench_quantizer.py --repeats 3 --frames 250 --skip-memory   # quick look
    # what a change costs: this checkout's quantizers against another checkout's, in one process
    git worktree add /tmp/base REV && .venv/bin/python bench/bench_quantizer.py --skip-memory --baseline-src /tmp/base

Why: DESIGN.md §6 sets HyperVQ's cost targets relative to two neighbours measured in the
same process: fairseq's stock ``GumbelVectorQuantizer`` (its code lookup broadcasts an
``N × (G·V) × d`` product) and ``EuclideanGumbelQuantizer``, the same Gumbel method written
with matrix products (the floor: what any quantizer with a V-way softmax per group costs).
Targets: HyperVQ time ≤ 0.2× stock, extra peak memory ≤ 0.15× stock, time ≤ 1.25× floor.

Method:
- time: one training step = forward in train mode, loss ``mean(x²) + (GV − prob_perplexity)/GV``,
  backward. The three quantizers run interleaved (rotating order) in one process on the same
  input, after one warm-up step each; the median over ``--repeats`` is reported, with ratios.
- memory: each quantizer runs in its own fresh subprocess. After a tiny warm-up step (lazy
  initialisation), the peak-RSS mark is reset (``/proc/self/clear_refs``; Linux) and one full
  step runs; "extra peak" = peak RSS (``VmHWM``) during the step − RSS just before it. Where the
  mark cannot be reset, ``getrusage`` max RSS is used instead (said in the output).
- ``--device cuda``: the same steps on the GPU, timed with ``torch.cuda.synchronize()`` around
  each; "extra peak" = ``torch.cuda.max_memory_allocated()`` during the step − memory allocated
  before it, measured in this process (the allocator's peak can be reset, so no subprocess).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

QUANTIZERS = ("hypervq", "stock", "floor")
BASELINE = "hypervq_baseline"  # the package of --baseline-src, imported under this name


def load_baseline(src: str):
    """The ``hypervq_fairseq`` package of another checkout, imported as :data:`BASELINE` beside this one."""
    import importlib.util
    import warnings

    init = os.path.join(src, "hypervq_fairseq", "__init__.py")
    if not os.path.isfile(init):
        raise SystemExit(f"--baseline-src {src}: no hypervq_fairseq/__init__.py there")
    spec = importlib.util.spec_from_file_location(BASELINE, init, submodule_search_locations=[os.path.dirname(init)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[BASELINE] = module
    with warnings.catch_warnings():  # its fairseq glue cannot register names this checkout already holds
        warnings.simplefilter("ignore")
        spec.loader.exec_module(module)
    return module


def build(name: str, args) -> torch.nn.Module:
    """One quantizer with wav2vec 2.0 BASE's arguments (latent_vars, latent_groups, final_dim).

    ``NAME@base``: the same quantizer from the ``--baseline-src`` checkout.
    """
    kwargs = dict(
        dim=args.dim, num_vars=args.num_vars, temp=(2.0, 0.5, 0.999995), groups=args.groups,
        combine_groups=False, vq_dim=args.vq_dim, time_first=True,
    )
    if name.endswith("@base"):
        package = sys.modules.get(BASELINE) or load_baseline(args.baseline_src)
        cls = {"hypervq": package.HyperbolicVectorQuantizer, "floor": package.EuclideanGumbelQuantizer}[name[:-5]]
        return cls(**kwargs)
    if name == "hypervq":
        from hypervq_fairseq import HyperbolicVectorQuantizer
        return HyperbolicVectorQuantizer(**kwargs)
    if name == "floor":
        from hypervq_fairseq import EuclideanGumbelQuantizer
        return EuclideanGumbelQuantizer(**kwargs)
    if name == "stock":
        from fairseq.modules import GumbelVectorQuantizer
        return GumbelVectorQuantizer(**kwargs)
    raise ValueError(f"unknown quantizer {name!r}; expected one of {QUANTIZERS}")


def make_input(batch: int, frames: int, dim: int, seed: int, device: str = "cpu") -> torch.Tensor:
    """Layer-normed features, as wav2vec 2.0 feeds its quantizer."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, frames, dim, generator=gen)
    return F.layer_norm(x, (dim,)).to(device).requires_grad_()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def train_step(module: torch.nn.Module, x: torch.Tensor) -> None:
    out = module(x)
    num_vars = out["num_vars"]
    loss = out["x"].square().mean() + (num_vars - out["prob_perplexity"]) / num_vars
    loss.backward()
    module.zero_grad(set_to_none=True)
    x.grad = None


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def measure_memory(name: str, args) -> dict:
    """Extra peak RSS of one full training step, in a process that ran nothing else big."""
    import gc
    import resource

    torch.manual_seed(args.seed)
    module = build(name, args).train()
    train_step(module, make_input(1, 16, args.dim, args.seed))      # lazy initialisation
    x = make_input(args.batch, args.frames, args.dim, args.seed)
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                                             # reset VmHWM to VmRSS
        method = "VmHWM"
    except OSError:
        method = "ru_maxrss"
    before = _status_kib("VmRSS")
    train_step(module, x)
    peak = _status_kib("VmHWM") if method == "VmHWM" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"name": name, "extra_peak_mib": (peak - before) / 1024, "method": method}


def measure_cuda_memory(name: str, args) -> dict:
    """Extra peak GPU memory of one full training step (the allocator's peak, reset before the step)."""
    torch.manual_seed(args.seed)
    module = build(name, args).to(args.device).train()
    train_step(module, make_input(1, 16, args.dim, args.seed, args.device))    # lazy initialisation
    x = make_input(args.batch, args.frames, args.dim, args.seed, args.device)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    train_step(module, x)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    del module, x
    torch.cuda.empty_cache()
    return {"name": name, "extra_peak_mib": peak / 2**20, "method": "cuda max_memory_allocated"}


def memory_in_subprocess(name: str, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", name,
           "--batch", str(args.batch), "--frames", str(args.frames), "--seed", str(args.seed),
           "--dim", str(args.dim), "--num-vars", str(args.num_vars), "--groups", str(args.groups),
           "--vq-dim", str(args.vq_dim), "--threads", str(args.threads)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_time(names, args) -> dict:
    torch.manual_seed(args.seed)
    modules = {n: build(n, args).to(args.device).train() for n in names}
    x = make_input(args.batch, args.frames, args.dim, args.seed, args.device)
    for m in modules.values():
        train_step(m, x)                                             # warm-up
    times = {n: [] for n in names}
    for rep in range(args.repeats):
        order = names[rep % len(names):] + names[: rep % len(names)]  # rotate: no fixed position
        for n in order:
            _sync(args.device)
            start = time.perf_counter()
            train_step(modules[n], x)
            _sync(args.device)
            times[n].append(time.perf_counter() - start)
        print(f"[bench] repeat {rep + 1}/{args.repeats}: " + ", ".join(f"{n} {times[n][-1]:.3f}s" for n in names),
              file=sys.stderr, flush=True)
    return {n: statistics.median(t) for n, t in times.items()}


def table(times: dict, memory: dict) -> str:
    rows = ["| quantizer | median step (s) | time / stock | time / floor | extra peak memory (MiB) | peak / stock |",
            "|---|---:|---:|---:|---:|---:|"]
    for n in [q for q in QUANTIZERS + tuple(f"{q}@base" for q in QUANTIZERS) if q in times]:
        t_stock, t_floor = times.get("stock"), times.get("floor")
        mem = memory.get(n, {}).get("extra_peak_mib")
        m_stock = memory.get("stock", {}).get("extra_peak_mib")
        cells = [
            n, f"{times[n]:.3f}",
            f"{times[n] / t_stock:.3f}" if t_stock else "–",
            f"{times[n] / t_floor:.3f}" if t_floor else "–",
            f"{mem:.0f}" if mem is not None else "–",
            f"{mem / m_stock:.3f}" if mem is not None and m_stock else "–",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def verdicts(times: dict, memory: dict) -> list:
    out = []
    h, s, f = times.get("hypervq"), times.get("stock"), times.get("floor")
    if h and s:
        out.append(("time ≤ 0.2× stock", h / s, h / s <= 0.2))
    if h and f:
        out.append(("time ≤ 1.25× floor", h / f, h / f <= 1.25))
    mh, ms = memory.get("hypervq", {}).get("extra_peak_mib"), memory.get("stock", {}).get("extra_peak_mib")
    if mh is not None and ms:
        out.append(("extra peak ≤ 0.15× stock", mh / ms, mh / ms <= 0.15))
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + "\n\nForward+backward in train mode; markdown table on stdout.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  .venv/bin/python bench/bench_quantizer.py\n"
               "  OMP_NUM_THREADS=1 .venv/bin/python bench/bench_quantizer.py --threads 1\n"
               "  .venv/bin/python bench/bench_quantizer.py --repeats 3 --frames 250 --skip-memory --only hypervq floor",
    )
    parser.add_argument("--batch", type=int, default=4, help="B (default 4: 4,000 frames with --frames 1000)")
    parser.add_argument("--frames", type=int, default=1000, help="T per utterance")
    parser.add_argument("--dim", type=int, default=512, help="input channels (wav2vec 2.0 conv features)")
    parser.add_argument("--num-vars", type=int, default=320, help="codes per group V")
    parser.add_argument("--groups", type=int, default=2, help="groups G")
    parser.add_argument("--vq-dim", type=int, default=256, help="output width (final_dim)")
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per quantizer (median reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--only", nargs="+", choices=QUANTIZERS, default=list(QUANTIZERS), help="quantizers to run")
    parser.add_argument("--skip-memory", action="store_true", help="time only, no memory subprocesses")
    parser.add_argument("--baseline-src", default=None,
                        help="another checkout of the project: also time its hypervq and floor quantizers in this "
                             "process (rows NAME@base) and print this checkout's time over theirs")
    parser.add_argument("--json", help="also write the results to this JSON file (atomically)")
    parser.add_argument("--memory-child", choices=QUANTIZERS, help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    if args.memory_child:
        print(json.dumps(measure_memory(args.memory_child, args)))
        return

    names = [n for n in QUANTIZERS if n in args.only]
    if args.baseline_src:
        names += [f"{n}@base" for n in ("hypervq", "floor") if n in names]
    print(f"[bench] N = {args.batch}×{args.frames} = {args.batch * args.frames} frames, C = {args.dim}, "
          f"V = {args.num_vars}, G = {args.groups}, vq_dim = {args.vq_dim}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", file=sys.stderr)
    load_before = os.getloadavg()[0]
    if args.skip_memory:
        memory = {}
    elif args.device.startswith("cuda"):
        memory = {n: measure_cuda_memory(n, args) for n in names}
    else:
        memory = {n: memory_in_subprocess(n, args) for n in names if "@" not in n}
    times = measure_time(names, args)
    load_after = os.getloadavg()[0]

    print(table(times, memory))
    if memory:
        method = next(iter(memory.values()))["method"]
        print(f"\nMemory: {method} during one step minus what was allocated before it"
              + ("." if method.startswith("cuda") else ", fresh process each."))
    if args.device.startswith("cuda"):
        print(f"\nDevice: {torch.cuda.get_device_name()}, torch {torch.__version__}.")
    else:
        print(f"\n{torch.get_num_threads()} torch threads on {os.cpu_count()} CPUs; 1-min load average "
              f"{load_before:.1f} before, {load_after:.1f} after (other jobs sharing the CPUs).")
    for what, ratio, ok in verdicts(times, memory):
        print(f"- {what}: {ratio:.3f} → {'met' if ok else 'MISSED'}")
    for n in names:
        if n.endswith("@base"):
            print(f"- {n[:-5]} time / the same quantizer of {args.baseline_src}: {times[n[:-5]] / times[n]:.3f}")
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"args": vars(args), "median_s": times, "memory": memory, "device": args.device}, f, indent=1)
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
