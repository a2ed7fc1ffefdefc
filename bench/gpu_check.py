"""The GPU check: every claim about GPUs in one run of under 8 minutes, one table at the end.

    bash bench/gpu_check.sh                          # on a machine with one CUDA GPU
    bash bench/gpu_check.sh --out gpu_check.md       # the table also goes to this file
    bash bench/gpu_check.sh --cpu-smoke              # the same steps at toy sizes on CPU (< 3 min)

Steps (each in its own process, with its own time limit, so that a crash, an out-of-memory or a
CUDA error is one failed row and the rest still run):

- ``env``: torch, CUDA, the device, fairseq.
- ``quantizer_precision``: HyperVQ's logits and codes with module and input in fp32, fp16 and
  bf16 against float64 evaluations of the same (rounded) weights and inputs, on the device; and
  codes under ``torch.autocast`` against plain fp32.
- ``quantizer_speed``: ``bench/bench_quantizer.py`` at BASE shapes (4,000 frames, 512 in, V=320,
  G=2, vq_dim 256): HyperVQ against fairseq's ``GumbelVectorQuantizer`` and the Euclidean floor,
  time and ``torch.cuda.max_memory_allocated``.
- ``w2v2_step_fp16`` / ``w2v2_step_bf16``: ``bench/bench_w2v2_step.py``, the whole BASE step
  (4 × 16 s) as fairseq's ``common.fp16=true`` / ``common.bf16=true`` run it, HyperVQ against the
  stock model: time ratio, peak memory, finite loss.
- ``train_fp16_kill_resume``: ``fairseq-hydra-train`` with the tiny config on the GPU in fp16 on a
  synthetic corpus, 50 updates saving every 10, SIGKILL after update 25, the same command again:
  it must resume from update 20 and finish at 50 with finite losses; how closely it repeats
  updates 21-25 is reported (GPU kernels need not be bit-reproducible).
- ``tokenize_device_vs_cpu``: ``hypervq-tokenize --device cuda`` against ``--device cpu`` on that
  checkpoint: the same ids.
- ``compile_quantizer``: ``torch.compile`` of HyperVQ: outputs equal to eager, time, and the graph
  breaks that remain (the MLR core compiles without any).

``--cpu-smoke`` runs every step on CPU at toy sizes (the training run: 6 updates, killed after
3, bf16-free fp16 through ``common.fp16_no_flatten_grads``; tokenize compares CPU with CPU;
torch.compile with the ``aot_eager`` backend), so that the script is exercised by the tests on
machines without a GPU. Exit status 0 when every row passed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STEPS = ("env", "quantizer_precision", "quantizer_speed", "w2v2_step_fp16", "w2v2_step_bf16",
         "train_fp16_kill_resume", "tokenize_device_vs_cpu", "compile_quantizer")
LIMITS_S = {"env": 60, "quantizer_precision": 120, "quantizer_speed": 180, "w2v2_step_fp16": 150,
            "w2v2_step_bf16": 150, "train_fp16_kill_resume": 300, "tokenize_device_vs_cpu": 150,
            "compile_quantizer": 240}
BUDGET_S = 480          # the whole check; a step that would start later is reported as skipped


class Sizes:
    """BASE shapes on the GPU, toy shapes for the CPU smoke run."""

    def __init__(self, smoke: bool):
        self.smoke = smoke
        self.device = "cpu" if smoke else "cuda"
        self.frames, self.dim, self.num_vars, self.vq_dim = (256, 64, 32, 32) if smoke else (4000, 512, 320, 256)
        self.groups = 2
        self.updates, self.save_every, self.kill_after = (6, 2, 3) if smoke else (50, 10, 25)
        self.repeats = 3 if smoke else 20


# ----------------------------------------------------------------------------- helpers for the steps


def _env(threads: int = 1) -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore", PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def _json_tail(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON result in the output: {text[-800:]}")


def _error_line(text: str) -> str:
    """The line of a program's output that says what went wrong (else its last line)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if re.search(r"(Error|Exception|error:|Could not)", line) and "HYDRA_FULL_ERROR" not in line:
            return line[:300]
    return lines[-1][:300] if lines else "no output"


def _quantizer(cls, sz: Sizes, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    return cls(sz.dim, sz.num_vars, (2.0, 0.5, 0.999995), sz.groups, False, sz.vq_dim, True)


def _features(sz: Sizes, seed: int = 1):
    import torch
    import torch.nn.functional as F

    x = torch.randn(1, sz.frames, sz.dim, generator=torch.Generator().manual_seed(seed))
    return F.layer_norm(x, (sz.dim,))


def _median_time(fn, repeats: int, device: str) -> float:
    import torch

    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ----------------------------------------------------------------------------- the steps (children)


def step_env(sz: Sizes) -> dict:
    import torch

    info = {"torch": torch.__version__, "cuda_build": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info.update(device=torch.cuda.get_device_name(), capability=".".join(map(str, torch.cuda.get_device_capability())),
                    memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))
    try:
        import fairseq

        info["fairseq"] = fairseq.__version__
    except Exception as e:  # noqa: BLE001  (reported, not fatal: the quantizer steps still run)
        info["fairseq"] = f"not importable ({type(e).__name__})"
    ok = sz.smoke or info["cuda_available"]
    result = (f"torch {info['torch']} (CUDA {info['cuda_build']}), "
              + (f"{info['device']} sm_{info['capability'].replace('.', '')} {info['memory_gib']} GiB"
                 if info["cuda_available"] else "no CUDA device") + f", fairseq {info['fairseq']}")
    return {"ok": ok, "result": result, "data": info}


def step_quantizer_precision(sz: Sizes) -> dict:
    import copy

    import torch

    from hypervq_fairseq import HyperbolicVectorQuantizer

    base = _quantizer(HyperbolicVectorQuantizer, sz).eval()
    x32 = _features(sz)
    rows = {}
    for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        q = copy.deepcopy(base).to(sz.device, dtype)
        x = x32.to(sz.device, dtype)
        ref = copy.deepcopy(q).double()                    # the same rounded weights, in float64
        with torch.no_grad():
            logits = q.logits(q.tangent(x.reshape(-1, sz.dim)))
            expected = ref.logits(ref.tangent(x.double().reshape(-1, sz.dim)))
            codes = q(x, produce_targets=True)["targets"].reshape(-1, sz.groups)
        want = expected.argmax(-1)
        top2 = expected.topk(2, dim=-1).values
        clear = (top2[..., 0] - top2[..., 1]) > 1e-4 * top2.abs().amax(-1).clamp_min(1)
        rel = float((logits.double() - expected).abs().max() / expected.abs().max())
        rows[name] = {"finite": bool(torch.isfinite(logits).all()), "max_rel_logit_err": rel,
                      "codes_equal": float((codes == want).float().mean()),
                      "codes_equal_clear_rows": float((codes == want)[clear].float().mean()),
                      "logits_dtype": str(logits.dtype).replace("torch.", "")}
    q32 = copy.deepcopy(base).to(sz.device)
    x = x32.to(sz.device)
    with torch.no_grad():
        plain = q32(x, produce_targets=True)["targets"]
        autocast = {}
        for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
            with torch.autocast(sz.device, dtype=dtype):
                autocast[name] = bool(torch.equal(q32(x, produce_targets=True)["targets"], plain))
    ok = all(r["finite"] and r["max_rel_logit_err"] < 1e-4 and r["codes_equal_clear_rows"] == 1.0 for r in rows.values())
    ok = ok and all(autocast.values())
    result = "; ".join(f"{n}: rel err {r['max_rel_logit_err']:.1e}, codes {100 * r['codes_equal']:.2f}% "
                       f"({100 * r['codes_equal_clear_rows']:.0f}% of clear rows)" for n, r in rows.items())
    result += "; autocast codes = fp32: " + ", ".join(f"{n} {'yes' if v else 'NO'}" for n, v in autocast.items())
    return {"ok": ok, "result": result, "data": {"dtypes": rows, "autocast_equal": autocast}}


def step_quantizer_speed(sz: Sizes, work: Path) -> dict:
    out = work / "bench_quantizer.json"
    shapes = ["--batch", "1", "--frames", str(sz.frames), "--dim", str(sz.dim), "--num-vars", str(sz.num_vars),
              "--vq-dim", str(sz.vq_dim), "--repeats", str(min(sz.repeats, 10)), "--device", sz.device]
    if not sz.smoke:
        shapes[1:4] = ["4", "--frames", "1000"]            # BASE: 4 x 1,000 frames
    done = subprocess.run([sys.executable, str(HERE / "bench_quantizer.py"), *shapes, "--json", str(out)],
                          env=_env(), capture_output=True, text=True, timeout=LIMITS_S["quantizer_speed"] - 10)
    if done.returncode != 0:
        raise RuntimeError(_error_line(done.stderr))
    data = json.loads(out.read_text())
    t, m = data["median_s"], data["memory"]
    peak = {k: v["extra_peak_mib"] for k, v in m.items()}
    result = (f"HyperVQ {1000 * t['hypervq']:.1f} ms = {t['hypervq'] / t['stock']:.3f}x stock, "
              f"{t['hypervq'] / t['floor']:.3f}x floor; extra peak {peak['hypervq']:.0f} MiB = "
              f"{peak['hypervq'] / max(peak['stock'], 1e-9):.3f}x stock ({peak['stock']:.0f} MiB), "
              f"floor {peak['floor']:.0f} MiB")
    if sz.smoke:
        result += " (toy sizes: ratios not judged)"
    return {"ok": True, "result": result, "data": data}


def step_w2v2(sz: Sizes, dtype: str) -> dict:
    args = ["--device", sz.device, "--dtype", dtype]
    args += ["--size", "toy", "--batch", "1", "--seconds", "1", "--rounds", "1", "--time-only"] if sz.smoke else \
        ["--rounds", "3"]
    done = subprocess.run([sys.executable, str(HERE / "bench_w2v2_step.py"), *args], env=_env(),
                          capture_output=True, text=True, timeout=LIMITS_S[f"w2v2_step_{dtype}"] - 10)
    if done.returncode != 0:
        raise RuntimeError(_error_line(done.stderr))
    data = _json_tail(done.stdout)
    result = f"{data['frames']} frames: time HyperVQ/stock {data['wall_time_ratio_median']:.3f}, loss finite"
    if "memory" in data:
        mem = data["memory"]
        result += (f"; peak {mem['hypervq']['peak_rss_gb']:.2f} GiB vs stock {mem['stock']['peak_rss_gb']:.2f} GiB "
                   f"({data['peak_rss_ratio']:.3f}x)")
    return {"ok": bool(data.get("finite_loss")), "result": result, "data": data}


# -- a synthetic corpus and the tiny training run ---------------------------------------------------


def synthetic_corpus(work: Path, *, train: int = 36, valid: int = 6, seed: int = 0) -> Path:
    """Speech-like audio (a wandering pitch with harmonics and noise) in LibriSpeech's layout under
    ``work/corpus``, and its manifests in ``work/manifest`` (returned).

    No speech data is reachable on a GPU machine; training mechanics, precision and resume do not
    need real speech.
    """
    import numpy as np
    import soundfile as sf

    from hypervq_fairseq.data.manifest import build_manifests

    root, manifest = work / "corpus", work / "manifest"
    if (manifest / "valid.tsv").exists():
        return manifest
    rng = np.random.default_rng(seed)
    for subset, count, speaker in (("train-clean-100", train, 1), ("dev-clean", valid, 2)):
        folder = root / subset / str(speaker) / "1"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            n = int(rng.uniform(1.0, 3.0) * 16000)
            t = np.arange(n) / 16000
            f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
            phase = 2 * np.pi * np.cumsum(f0) / 16000
            wave = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t) ** 2)
            wave = 0.2 * wave / np.abs(wave).max() + 0.01 * rng.standard_normal(n)
            sf.write(folder / f"{speaker}-1-{i:04d}.flac", wave.astype("float32"), 16000)
    build_manifests(root, manifest, train_subsets=["train-clean-100"], valid_subsets=["dev-clean"], workers=1,
                    progress=False)
    return manifest


_JSON = re.compile(r"\]\[(train_inner)\]\[INFO\] - (\{.*\})\s*$")


def _train(cmd, *, kill_after=None, timeout=240):
    """Run fairseq-hydra-train; with ``kill_after``, SIGKILL it once that update is logged."""
    proc = subprocess.Popen(cmd, env=_env(threads=4), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1)
    updates, lines = {}, []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        m = _JSON.search(line)
        if m:
            record = json.loads(m.group(2))
            updates[int(record["num_updates"])] = record
            if kill_after is not None and int(record["num_updates"]) >= kill_after:
                proc.send_signal(signal.SIGKILL)
                break
        if time.monotonic() > deadline:
            proc.kill()
            break
    proc.wait()
    proc.stdout.close()
    return proc.returncode, updates, "".join(lines)


def step_train_fp16_kill_resume(sz: Sizes, work: Path) -> dict:
    manifest = synthetic_corpus(work)
    save = work / "ckpt"
    cmd = [sys.executable, "-m", "fairseq_cli.hydra_train", "--config-name", "hypervq_w2v2_tiny",
           f"task.data={manifest}", f"checkpoint.save_dir={save}", f"hydra.run.dir={work / 'hydra'}",
           f"optimization.max_update={sz.updates}", f"checkpoint.save_interval_updates={sz.save_every}",
           "checkpoint.keep_interval_updates=-1", "common.fp16=true", "task.min_sample_size=8000"]
    cmd += ["common.cpu=true", "common.fp16_no_flatten_grads=true"] if sz.smoke else ["common.cpu=false"]
    rc, killed, text = _train(cmd, kill_after=sz.kill_after, timeout=LIMITS_S["train_fp16_kill_resume"] // 2)
    if rc != -signal.SIGKILL:
        raise RuntimeError(f"the first run was not killed (exit {rc}): {_error_line(text)}")
    # the last save the killed run completed (a fast GPU may pass a save before the kill lands)
    saved = [int(u) for u in re.findall(r"Saved checkpoint \S+ \(epoch \d+ @ (\d+) updates", text)]
    rc, resumed, text = _train(cmd, timeout=LIMITS_S["train_fp16_kill_resume"] // 2)
    if rc != 0:
        raise RuntimeError(f"the resumed run failed (exit {rc}): {_error_line(text)}")
    resume_at = max(saved, default=0)
    loaded = re.search(r"Loaded checkpoint .* \(epoch \d+ @ (\d+) updates\)", text)
    losses = [float(r["loss"]) for r in list(killed.values()) + list(resumed.values())]
    repeated = [u for u in killed if u in resumed]
    diff = max((abs(float(killed[u]["loss"]) - float(resumed[u]["loss"])) for u in repeated), default=float("nan"))
    ok = (resume_at > 0 and loaded is not None and int(loaded.group(1)) == resume_at and max(resumed) == sz.updates
          and all(map(lambda v: v == v and abs(v) != float("inf"), losses)))
    result = (f"killed after update {max(killed)}, resumed from {loaded.group(1) if loaded else '?'} "
              f"(expected {resume_at}), finished at {max(resumed)}; losses finite: "
              f"{all(v == v and abs(v) != float('inf') for v in losses)}; updates {repeated[0] if repeated else '-'}-"
              f"{repeated[-1] if repeated else '-'} repeated, max |loss diff| {diff:.3g}")
    return {"ok": ok, "result": result, "data": {"killed": killed, "resumed": resumed}}


def _checkpoint_for_tokens(sz: Sizes, work: Path) -> Path:
    """The training step's checkpoint, or a 2-update CPU one if that step did not leave any."""
    ckpt = work / "ckpt" / "checkpoint_last.pt"
    if ckpt.exists():
        return ckpt
    manifest = synthetic_corpus(work)
    rc, _, text = _train([sys.executable, "-m", "fairseq_cli.hydra_train", "--config-name", "hypervq_w2v2_tiny",
                          f"task.data={manifest}", f"checkpoint.save_dir={work / 'ckpt'}",
                          f"hydra.run.dir={work / 'hydra2'}", "optimization.max_update=2"], timeout=120)
    if rc != 0:
        raise RuntimeError(f"could not make a checkpoint to tokenize with: {_error_line(text)}")
    return ckpt


def step_tokenize(sz: Sizes, work: Path) -> dict:
    ckpt = _checkpoint_for_tokens(sz, work)
    out = {}
    for device in (sz.device, "cpu"):
        target = work / f"tokens_{device}_{len(out)}.tok"
        done = subprocess.run([sys.executable, "-m", "hypervq_fairseq.tools.tokenize", str(ckpt),
                               str(work / "manifest" / "train.tsv"), "--out", str(target), "--device", device,
                               "--no-progress"], env=_env(threads=4), capture_output=True, text=True,
                              timeout=LIMITS_S["tokenize_device_vs_cpu"] // 2)
        if done.returncode != 0:
            raise RuntimeError(_error_line(done.stderr))
        out[len(out)] = target.read_text().splitlines()
    a, b = out[0], out[1]
    frames = same = 0
    for la, lb in zip(a, b):
        fa, fb = la.split("\t")[1].split(), lb.split("\t")[1].split()
        frames += max(len(fa), len(fb))
        same += sum(x == y for x, y in zip(fa, fb))
    share = same / max(frames, 1)
    ok = len(a) == len(b) and share >= 0.999
    where = f"{sz.device} vs cpu" + (" (smoke: both on CPU)" if sz.smoke else "")
    return {"ok": ok, "result": f"{where}: {len(a)} utterances, {frames} frames, {100 * share:.3f}% ids equal"
                                 f"{', files identical' if a == b else ''}", "data": {"frames": frames, "equal": same}}


def step_compile(sz: Sizes) -> dict:
    import torch
    import torch._dynamo

    from hypervq_fairseq import HyperbolicVectorQuantizer, unidirectional_mlr_logits

    backend = "aot_eager" if sz.smoke else "inductor"
    x = _features(sz).to(sz.device)
    q = _quantizer(HyperbolicVectorQuantizer, sz).to(sz.device).eval()

    # graph breaks: the MLR core alone, then the whole quantizer
    v = torch.randn(64, sz.groups, sz.vq_dim // sz.groups, device=sz.device) * 20
    torch._dynamo.reset()
    core = torch._dynamo.explain(unidirectional_mlr_logits)(v, q.normals.detach(), q.offsets.detach())
    torch._dynamo.reset()
    whole = torch._dynamo.explain(q)(x)
    breaks = sorted({f"{Path(fr.filename).name}:{fr.lineno}" for b in whole.break_reasons for fr in b.user_stack[-1:]})

    torch._dynamo.reset()
    compiled = torch.compile(q, backend=backend)
    with torch.no_grad():
        start = time.perf_counter()
        out_c = compiled(x, produce_targets=True)
        first = time.perf_counter() - start
        out_e = q(x, produce_targets=True)
        equal = bool(torch.equal(out_c["targets"], out_e["targets"]))
        close = bool(torch.allclose(out_c["x"], out_e["x"], rtol=1e-5, atol=1e-6))
        eager_t = _median_time(lambda: q(x), sz.repeats, sz.device)
        compiled_t = _median_time(lambda: compiled(x), sz.repeats, sz.device)
    q.train()
    xg = x.clone().requires_grad_()
    train_out = torch.compile(q, backend=backend)(xg)
    (train_out["x"].square().mean() - train_out["prob_perplexity"]).backward()
    grads_finite = bool(torch.isfinite(xg.grad).all()) and all(bool(torch.isfinite(p.grad).all())
                                                              for p in q.parameters() if p.grad is not None)
    ok = equal and close and grads_finite and core.graph_break_count == 0
    result = (f"{backend}: codes equal {equal}, x close {close}, train grads finite {grads_finite}; eval "
              f"{1000 * eager_t:.2f} ms eager, {1000 * compiled_t:.2f} ms compiled (first call {first:.1f} s); "
              f"graph breaks: MLR core {core.graph_break_count}, quantizer {whole.graph_break_count} at "
              f"{', '.join(breaks) or '-'}")
    return {"ok": ok, "result": result, "data": {"core_breaks": core.graph_break_count,
                                                 "quantizer_breaks": whole.graph_break_count, "at": breaks}}


def run_step(name: str, sz: Sizes, work: Path) -> dict:
    if name == "env":
        return step_env(sz)
    if name == "quantizer_precision":
        return step_quantizer_precision(sz)
    if name == "quantizer_speed":
        return step_quantizer_speed(sz, work)
    if name.startswith("w2v2_step_"):
        return step_w2v2(sz, name.rsplit("_", 1)[1])
    if name == "train_fp16_kill_resume":
        return step_train_fp16_kill_resume(sz, work)
    if name == "tokenize_device_vs_cpu":
        return step_tokenize(sz, work)
    if name == "compile_quantizer":
        return step_compile(sz)
    raise ValueError(f"unknown step {name!r}; steps: {', '.join(STEPS)}")


# ----------------------------------------------------------------------------- the parent: rows and the table


def child(args) -> int:
    sz = Sizes(args.cpu_smoke)
    try:
        row = run_step(args.child, sz, Path(args.work))
    except Exception as e:  # noqa: BLE001  (every failure becomes the row's text)
        row = {"ok": False, "result": f"{type(e).__name__}: {_error_line(str(e))}", "data": {"error": str(e)[-3000:]}}
    print(json.dumps(row, default=str))
    return 0


def one_row(name: str, args, work: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--work", str(work)]
    if args.cpu_smoke:
        cmd.append("--cpu-smoke")
    start = time.monotonic()
    try:
        done = subprocess.run(cmd, env=_env(threads=2 if args.cpu_smoke else 8), capture_output=True, text=True,
                              timeout=LIMITS_S[name])
        row = _json_tail(done.stdout) if done.returncode == 0 else {
            "ok": False, "result": f"the step's process died (exit {done.returncode}): {_error_line(done.stderr)}"}
    except subprocess.TimeoutExpired:
        row = {"ok": False, "result": f"stopped at its time limit of {LIMITS_S[name]} s"}
    except Exception as e:  # noqa: BLE001
        row = {"ok": False, "result": f"{type(e).__name__}: {e}"}
    row["seconds"] = time.monotonic() - start
    return row


def table(rows: dict, title: str) -> str:
    lines = [f"# {title}", "", "| step | status | seconds | result |", "|---|---|---:|---|"]
    for name, row in rows.items():
        status = "ok" if row["ok"] else ("skipped" if row.get("skipped") else "FAIL")
        text = str(row["result"]).replace("|", "/").replace("\n", " ")
        lines.append(f"| {name} | {status} | {row.get('seconds', 0):.0f} | {text} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="examples:\n  bash bench/gpu_check.sh\n  bash bench/gpu_check.sh --cpu-smoke --out "
                                       "runs/gpu_check_smoke.md\n  bash bench/gpu_check.sh --steps env compile_quantizer")
    p.add_argument("--cpu-smoke", action="store_true", help="every step at toy sizes on CPU (a few minutes)")
    p.add_argument("--out", default=None, help="also write the table here (default runs/gpu_check-DATE.md)")
    p.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS), help="run only these steps")
    p.add_argument("--work", default=None, help="folder for the corpus, checkpoints and token files (default: temporary)")
    p.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)

    sys.path.insert(0, str(ROOT))
    from hypervq_fairseq.files import atomic_write_text, check_writable_folder

    out = Path(args.out or ROOT / "runs" / f"gpu_check{'_smoke' if args.cpu_smoke else ''}-{time.strftime('%Y%m%d-%H%M%S')}.md")
    check_writable_folder(out.parent, what="--out folder")
    title = f"GPU check{' (CPU smoke run, toy sizes)' if args.cpu_smoke else ''}, {time.strftime('%Y-%m-%d %H:%M')}"
    rows, start = {}, time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in args.steps:
            if time.monotonic() - start > BUDGET_S:
                rows[name] = {"ok": False, "skipped": True, "result": f"not started: the check's {BUDGET_S} s budget is spent"}
                continue
            print(f"[gpu_check] {name} ...", file=sys.stderr, flush=True)
            rows[name] = one_row(name, args, work)
            print(f"[gpu_check] {name}: {'ok' if rows[name]['ok'] else 'FAIL'} ({rows[name]['seconds']:.0f} s) "
                  f"{rows[name]['result']}", file=sys.stderr, flush=True)
    text = table(rows, title) + f"\nTotal {time.monotonic() - start:.0f} s.\n"
    print(text)
    atomic_write_text(out, text)
    atomic_write_text(out.with_suffix(".json"), json.dumps(rows, indent=1, default=str) + "\n")
    print(f"[gpu_check] wrote {out} and {out.with_suffix('.json').name}", file=sys.stderr)
    return 0 if all(r["ok"] for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
