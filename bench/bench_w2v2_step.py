"""Whole wav2vec 2.0 BASE training step: HyperVQ model vs fairseq's stock model, on CPU.

Why: the stock ``GumbelVectorQuantizer`` broadcasts an N×(G·V)×d product to look codes up,
which is expensive at BASE shapes; the claim is that swapping in HyperVQ leaves a whole
pretraining step no slower and lighter in peak memory. One step = forward, the wav2vec 2.0
loss (InfoNCE + diversity + feature penalty, fairseq's own criterion), backward.

Method: both models are built from the same ``Wav2Vec2Config`` (fairseq's BASE defaults plus
the LibriSpeech recipe's ``quantize_targets``, ``final_dim 256``, ``feature_grad_mult 0.1``,
``encoder_layerdrop 0.05``); the stock one is fairseq's registered ``wav2vec2``, ours is
``hypervq_wav2vec2``. Time: in one process, interleaved (stock, HyperVQ, stock, ...) after a
warm-up step each, same batch and seed, reported as the median ratio of CPU time of the
process (robust to other jobs sharing the cores) and of wall time. Peak memory: each model
in its own fresh subprocess (peak RSS of the process, and its growth during the step).
The batch is random audio (timing does not depend on content).

On a GPU (``--device cuda``) the step is timed with ``torch.cuda.synchronize()`` around it (wall
time), peak memory is ``torch.cuda.max_memory_allocated()`` during the step, measured in this
process, and ``--dtype fp16|bf16`` runs the step as fairseq's ``common.fp16=true`` /
``common.bf16=true`` do: the whole model and the batch cast to that dtype (fairseq's optimizer
wrappers then keep fp32 master weights, which a single forward+backward does not involve).
``--size toy`` uses a 2-layer, 64-wide model (the tiny config's shapes) for smoke tests.

    python bench/bench_w2v2_step.py                      # 4 x 16 s (~4,000 frames), 3 rounds
    python bench/bench_w2v2_step.py --batch 2 --seconds 8 --rounds 2   # a quicker look
    python bench/bench_w2v2_step.py --memory-only
    python bench/bench_w2v2_step.py --device cuda --dtype bf16          # on a GPU, in bfloat16
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Tuple

import torch

SAMPLE_RATE = 16000
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
TOY = dict(encoder_layers=2, encoder_embed_dim=64, encoder_ffn_embed_dim=128, encoder_attention_heads=2,
           conv_feature_layers="[(64, 10, 5)] + [(64, 3, 2)] * 4 + [(64, 2, 2)] * 2", conv_pos=16,
           conv_pos_groups=4, final_dim=32, latent_vars=32)


def build(kind: str, size: str = "base"):
    import hypervq_fairseq  # noqa: F401  (registers hypervq_wav2vec2)
    from fairseq.models.wav2vec.wav2vec2 import Wav2Vec2Model
    from hypervq_fairseq.fairseq.models import HyperVQWav2Vec2Config, HyperVQWav2Vec2Model

    recipe = dict(quantize_targets=True, final_dim=256, encoder_layerdrop=0.05, dropout_input=0.1,
                  dropout_features=0.1, feature_grad_mult=0.1)
    recipe.update(TOY if size == "toy" else {})
    cfg = HyperVQWav2Vec2Config(quantizer_type="hyperbolic" if kind == "hypervq" else "gumbel", **recipe)
    if kind == "hypervq":
        return HyperVQWav2Vec2Model(cfg)
    return Wav2Vec2Model(cfg)  # fairseq's own class, stock quantizer


def make_batch(batch: int, seconds: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, int(seconds * SAMPLE_RATE), generator=g)


def loss_of(model, source):
    """fairseq's wav2vec criterion with the BASE recipe's weights, on one batch."""
    from fairseq.criterions.wav2vec_criterion import Wav2vecCriterion

    crit = Wav2vecCriterion(task=None, infonce=True, loss_weights=[0.1, 10], log_keys=[])
    sample = {"net_input": {"source": source}, "id": torch.arange(source.shape[0])}
    loss, _, log = crit(model, sample)
    return loss, log


def _sync(source) -> None:
    if source.is_cuda:
        torch.cuda.synchronize()


def step(model, source, seed: int) -> Tuple[float, float]:
    """One forward+backward; returns (wall seconds, CPU seconds of this process)."""
    torch.manual_seed(seed)
    model.zero_grad(set_to_none=True)
    _sync(source)
    wall, cpu = time.perf_counter(), time.process_time()
    loss, _ = loss_of(model, source)
    loss.backward()
    _sync(source)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if not torch.isfinite(loss):
        raise RuntimeError(f"non-finite loss {loss.item()}")
    return wall, cpu


class PeakRSS:
    """Peak resident memory of this process during a block, sampled from /proc every 2 ms.

    ``ru_maxrss`` cannot be reset, so it would also count whatever happened before the step.
    """

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.peak = self.start = 0

    @staticmethod
    def current() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            self._stop.wait(self.interval)

    def __enter__(self):
        import threading

        self.start = self.peak = self.current()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


def prepared(kind: str, args):
    """The model and batch on ``--device`` in ``--dtype``."""
    dtype = DTYPES[args.dtype]
    model = build(kind, args.size).to(args.device, dtype).train()
    return model, make_batch(args.batch, args.seconds).to(args.device, dtype)


def cuda_memory(args) -> dict:
    """Peak GPU memory of one step per model (after a warm-up step), in this process."""
    out = {}
    for kind in ("stock", "hypervq"):
        model, source = prepared(kind, args)
        step(model, source, seed=0)
        model.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step(model, source, seed=0)
        peak = torch.cuda.max_memory_allocated()
        out[kind] = {"kind": kind, "peak_rss_gb": peak / 2**30, "step_growth_gb": (peak - before) / 2**30,
                     "method": "cuda max_memory_allocated"}
        del model, source
        torch.cuda.empty_cache()
    return out


def memory_child(kind: str, batch: int, seconds: float, size: str = "base") -> None:
    model = build(kind, size).train()
    source = make_batch(batch, seconds)
    with PeakRSS() as mem:
        step(model, source, seed=0)
    gb = 2**30
    print(json.dumps({"kind": kind, "peak_rss_gb": mem.peak / gb, "step_growth_gb": (mem.peak - mem.start) / gb}))


def measure_memory(batch: int, seconds: float, size: str = "base") -> dict:
    out = {}
    for kind in ("stock", "hypervq"):
        proc = subprocess.run(
            [sys.executable, __file__, "--child-memory", kind, "--batch", str(batch), "--seconds", str(seconds),
             "--size", size],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"memory child {kind} failed:\n{proc.stderr[-3000:]}")
        out[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def measure_time(args) -> dict:
    batch, seconds, rounds = args.batch, args.seconds, args.rounds
    torch.manual_seed(0)
    models = {}
    for kind in ("stock", "hypervq"):
        models[kind], source = prepared(kind, args)
    frames = int(models["stock"]._get_feat_extract_output_lengths(torch.tensor(source.shape[1])))
    print(f"[bench] batch {batch} x {seconds:g} s = {batch * frames} frames after the feature extractor; "
          f"params stock {sum(p.numel() for p in models['stock'].parameters()) / 1e6:.1f} M, "
          f"hypervq {sum(p.numel() for p in models['hypervq'].parameters()) / 1e6:.1f} M; "
          f"threads {torch.get_num_threads()}", flush=True)
    for kind, model in models.items():  # warm-up
        step(model, source, seed=0)
    times = {kind: {"wall": [], "cpu": []} for kind in models}
    for r in range(rounds):
        for kind in ("stock", "hypervq"):
            wall, cpu = step(models[kind], source, seed=r)
            times[kind]["wall"].append(wall)
            times[kind]["cpu"].append(cpu)
        print(f"[bench] round {r + 1}/{rounds}: CPU time stock {times['stock']['cpu'][-1]:.2f} s, "
              f"hypervq {times['hypervq']['cpu'][-1]:.2f} s (wall {times['stock']['wall'][-1]:.2f} s, "
              f"{times['hypervq']['wall'][-1]:.2f} s)", flush=True)
    ratio = {m: statistics.median(h / s for h, s in zip(times["hypervq"][m], times["stock"][m])) for m in ("cpu", "wall")}
    return {"frames": batch * frames, "times_s": times, "cpu_time_ratio_median": ratio["cpu"],
            "wall_time_ratio_median": ratio["wall"], "finite_loss": True}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python bench/bench_w2v2_step.py\n"
               "  python bench/bench_w2v2_step.py --batch 2 --seconds 8 --rounds 2\n"
               "  python bench/bench_w2v2_step.py --memory-only",
    )
    parser.add_argument("--batch", type=int, default=4, help="utterances per batch")
    parser.add_argument("--seconds", type=float, default=16.0, help="seconds per utterance (16 kHz)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per model, after one warm-up")
    parser.add_argument("--memory-only", action="store_true", help="skip the timing")
    parser.add_argument("--time-only", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32",
                        help="model and batch dtype: fp16/bf16 as fairseq's common.fp16/common.bf16 (default fp32)")
    parser.add_argument("--size", choices=["base", "toy"], default="base", help="BASE (default) or a toy model")
    parser.add_argument("--child-memory", choices=["stock", "hypervq"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch < 1 or args.seconds <= 0 or args.rounds < 1:
        parser.error(f"--batch, --seconds and --rounds must be positive, got {args.batch}, {args.seconds}, {args.rounds}")

    if args.child_memory:
        memory_child(args.child_memory, args.batch, args.seconds, args.size)
        return
    report = {"batch": args.batch, "seconds": args.seconds, "threads": torch.get_num_threads(),
              "device": args.device, "dtype": args.dtype, "size": args.size}
    if not args.memory_only:
        report.update(measure_time(args))
        print(f"[bench] time ratio hypervq/stock (median over rounds): CPU {report['cpu_time_ratio_median']:.3f}, "
              f"wall {report['wall_time_ratio_median']:.3f}", flush=True)
    if not args.time_only:
        if args.device.startswith("cuda"):
            mem = cuda_memory(args)
        else:
            if args.dtype != "fp32":
                parser.error("CPU memory is measured in fp32 only; add --time-only")
            mem = measure_memory(args.batch, args.seconds, args.size)
        report["memory"] = mem
        report["peak_rss_ratio"] = mem["hypervq"]["peak_rss_gb"] / mem["stock"]["peak_rss_gb"]
        report["step_growth_ratio"] = mem["hypervq"]["step_growth_gb"] / mem["stock"]["step_growth_gb"]
        print(f"[bench] peak RSS during the step: stock {mem['stock']['peak_rss_gb']:.2f} GB, hypervq "
              f"{mem['hypervq']['peak_rss_gb']:.2f} GB (ratio {report['peak_rss_ratio']:.3f}); growth over "
              f"the model's footprint: stock {mem['stock']['step_growth_gb']:.2f} GB, hypervq "
              f"{mem['hypervq']['step_growth_gb']:.2f} GB (ratio {report['step_growth_ratio']:.3f})", flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
