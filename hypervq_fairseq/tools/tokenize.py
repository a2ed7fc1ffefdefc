"""hypervq-tokenize: the HyperVQ code ids of every utterance of a manifest, from a pretrained checkpoint.

Why: HyperVQ is a tokenizer. After wav2vec 2.0 pretraining, the target quantizer turns each
20 ms frame into one code per group; those ids are the discrete speech units that unit LMs,
HuBERT-style targets or codec studies consume. This tool runs the model's own ``quantize()``
path (feature extractor -> layer norm -> ``quantizer.forward_idx``) in eval mode, where HyperVQ
picks codes by argmax without Gumbel noise: the same audio always gives the same ids.

Output: one line per utterance, keyed by its manifest path (relative to the manifest's root)::

    train-clean-100/103/1240/103-1240-0000.flac<TAB>17,3 17,3 250,41 ...     (per group: g0,g1,...)
    train-clean-100/103/1240/103-1240-0000.flac<TAB>5443 5443 80041 ...      (--combine)

``--combine`` folds the G group ids of a frame into one id ``Σ_g idx_g · V^(G-1-g)`` (fairseq's
``GumbelVectorQuantizer.to_codebook_index``), in ``[0, V^G)``. A sidecar ``OUT.json`` records the
checkpoint, G, V, the frame rate and a fingerprint of the quantizer's weights.

Batching without changing the ids: utterances are sorted by length and padded. The conv
feature extractor has no padding, so every frame inside an utterance's own output length sees
only its own samples; the one non-local layer, the GroupNorm over time of the first conv in
``extractor_mode: default``, is evaluated with statistics over each utterance's valid frames.
Batched ids therefore equal one-at-a-time ids (tested).

Resuming: lines are appended and flushed one by one. On restart the file is read back, keys
already present are skipped, and a last line cut off mid-write (no final newline) is dropped
and redone. When every utterance is done the file is rewritten (atomically) in manifest order.
A fine-tuned checkpoint (``wav2vec_ctc``) or a model whose pretraining modules were removed has
no quantizer: the tool says so and points to the pretraining checkpoint.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

EXAMPLES = """examples:
  # per-group ids of the demo corpus from a demo pretraining checkpoint
  hypervq-tokenize runs/demo/hypervq/ckpt/checkpoint_last.pt runs/demo/manifest/train.tsv --out runs/demo/tokens/train.tok
  # one combined id per frame (V^G symbols), on a GPU, larger batches
  hypervq-tokenize ckpt/checkpoint_best.pt manifests/librispeech/train.tsv --out tokens/train.km --combine \\
      --device cuda --max-tokens 3200000
  # interrupted? run the same command again: finished utterances are skipped
"""

FINETUNED_MODELS = ("wav2vec_ctc", "wav2vec_seq2seq", "wav2vec2_ctc")


class TokenizeError(RuntimeError):
    """Bad input: no quantizer in the checkpoint, a bad manifest, an inconsistent output file."""


class NoQuantizerError(TokenizeError):
    """The checkpoint holds a model without a (target) quantizer."""


@dataclass
class TokenizerModel:
    """A pretrained model ready for ``encode``, and what the output file records about it."""

    model: nn.Module
    groups: int
    num_vars: int
    frame_stride: int  # input samples per output frame
    normalize: bool  # the task normalised each waveform (zero mean, unit variance)
    fingerprint: str  # sha256 of the quantizer's weights, to refuse mixing ids of two models
    model_name: str
    sample_rate: int = 16000  # the pretraining task's

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.frame_stride


# ----------------------------------------------------------------------------- loading


def _quantizer_fingerprint(quantizer: nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(quantizer.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()[:16]


def load_tokenizer_model(path, device: str = "cpu") -> TokenizerModel:
    """Build the pretrained model stored in ``path`` and load its weights, quantizer included.

    Raises :class:`NoQuantizerError` for fine-tuned checkpoints, models built without quantized
    targets, and checkpoints whose quantizer weights were removed.
    """
    import fairseq.models
    from fairseq import checkpoint_utils

    import hypervq_fairseq.models  # noqa: F401  registers hypervq_wav2vec2

    path = str(path)
    if not os.path.isfile(path):
        raise TokenizeError(f"checkpoint {path} not found")
    state = checkpoint_utils.load_checkpoint_to_cpu(path)
    cfg = state.get("cfg")
    if cfg is None or cfg.get("model") is None:
        raise TokenizeError(f"{path} is not a fairseq checkpoint (no 'cfg' with a 'model' section)")
    name = cfg.model.get("_name")
    if name in FINETUNED_MODELS:
        hint = ""
        w2v_path = cfg.model.get("w2v_path")
        if w2v_path:
            hint = f" It was fine-tuned from {w2v_path}: tokenize with that pretraining checkpoint."
        raise NoQuantizerError(
            f"{path} holds a fine-tuned '{name}' model: fine-tuning removes the quantizer "
            f"(remove_pretraining_modules), so it has no code ids to give.{hint}")
    weights = state["model"]
    if not any(k.startswith("quantizer.") for k in weights):
        raise NoQuantizerError(
            f"{path} has no quantizer weights (model '{name}'): it was saved without pretraining modules "
            f"or trained with quantize_targets=false. Use a pretraining checkpoint with a quantizer.")
    try:
        model = fairseq.models.build_model(cfg.model, task=None, from_checkpoint=True)
    except (KeyError, TypeError, AttributeError) as e:
        raise TokenizeError(f"cannot build model '{name}' of {path}: {e!r}") from e
    if getattr(model, "quantizer", None) is None or not hasattr(model, "feature_extractor"):
        raise NoQuantizerError(f"{path}: model '{name}' has no target quantizer (quantize_targets=false?)")
    model.load_state_dict(weights, strict=True)
    model.eval().to(device)

    stride = 1
    for _dim, _k, s in eval(cfg.model.conv_feature_layers):  # fairseq's own format: a Python list literal
        stride *= s
    task = cfg.get("task") or {}
    return TokenizerModel(
        model=model,
        groups=int(model.quantizer.groups),
        num_vars=int(model.quantizer.num_vars),
        frame_stride=stride,
        normalize=bool(task.get("normalize", False)),
        fingerprint=_quantizer_fingerprint(model.quantizer),
        model_name=name,
        sample_rate=int(task.get("sample_rate", 16000)),
    )


# ----------------------------------------------------------------------------- encoding


def _masked_group_norm(norm: nn.GroupNorm, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """GroupNorm over (channels of a group, time) using only each item's first ``lengths`` frames."""
    bsz, channels, tsz = x.shape
    g = norm.num_groups
    xf = x.float().view(bsz, g, channels // g, tsz)
    mask = (torch.arange(tsz, device=x.device)[None, :] < lengths[:, None]).to(xf.dtype)  # (B, T)
    mask = mask[:, None, None, :]
    count = mask.sum(dim=(2, 3), keepdim=True) * (channels // g)
    mean = (xf * mask).sum(dim=(2, 3), keepdim=True) / count
    var = (((xf - mean) * mask) ** 2).sum(dim=(2, 3), keepdim=True) / count
    y = ((xf - mean) / torch.sqrt(var + norm.eps)).view(bsz, channels, tsz)
    if norm.affine:
        y = y * norm.weight.float()[None, :, None] + norm.bias.float()[None, :, None]
    return y.to(x.dtype)


def _conv_features(model: nn.Module, wav: torch.Tensor, lengths: torch.Tensor):
    """fairseq's conv feature extractor on a padded batch; returns (B, C, T) and valid frame counts."""
    x = wav.unsqueeze(1)
    for block in model.feature_extractor.conv_layers:
        conv = block[0]
        x = conv(x)
        lengths = torch.div(lengths - conv.kernel_size[0], conv.stride[0], rounding_mode="floor") + 1
        for layer in list(block)[1:]:
            x = _masked_group_norm(layer, x, lengths) if isinstance(layer, nn.GroupNorm) else layer(x)
    return x, lengths


@torch.no_grad()
def encode(tm: TokenizerModel, waves: list) -> list:
    """Code ids ``(T_i, G)`` (int64, CPU) for each 1-D float waveform in ``waves``."""
    model = tm.model
    device = next(model.parameters()).device
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    batch = torch.zeros(len(waves), int(lengths.max()), dtype=torch.float32)
    for i, w in enumerate(waves):
        w = torch.as_tensor(w, dtype=torch.float32)
        if tm.normalize:
            w = F.layer_norm(w, w.shape)
        batch[i, : len(w)] = w
    # the model's quantize() path, made exact under padding (module docstring)
    features, frames = _conv_features(model, batch.to(device), lengths.to(device))
    features = model.layer_norm(features.transpose(1, 2))
    _, idx = model.quantizer.forward_idx(features)  # (B, T, G), argmax in eval mode
    idx = idx.cpu()
    return [idx[i, : int(n)].long() for i, n in enumerate(frames.cpu())]


def combine_ids(ids: torch.Tensor, num_vars: int) -> torch.Tensor:
    """``(..., G)`` group ids -> ``(...)`` ids ``Σ_g idx_g · V^(G-1-g)`` (fairseq's ``to_codebook_index``)."""
    groups = ids.shape[-1]
    weights = torch.tensor([num_vars ** (groups - 1 - g) for g in range(groups)], dtype=torch.long)
    return (ids.long() * weights).sum(dim=-1)


def split_ids(combined: torch.Tensor, num_vars: int, groups: int) -> torch.Tensor:
    """Inverse of :func:`combine_ids`: ``(...)`` -> ``(..., G)``."""
    out = []
    rest = combined.long()
    for g in range(groups):
        base = num_vars ** (groups - 1 - g)
        out.append(torch.div(rest, base, rounding_mode="floor"))
        rest = rest % base
    return torch.stack(out, dim=-1)


def format_ids(ids: torch.Tensor, num_vars: int, combine: bool) -> str:
    if combine:
        return " ".join(map(str, combine_ids(ids, num_vars).tolist()))
    return " ".join(",".join(map(str, frame)) for frame in ids.tolist())


def parse_line(line: str, groups: int, combine: bool):
    """``(key, ids (T, G))`` from one output line; raises ValueError on a malformed line."""
    key, sep, body = line.rstrip("\n").partition("\t")
    if not sep or not key:
        raise ValueError("expected 'path<TAB>ids'")
    frames = body.split()
    if combine:
        values = [[int(t)] for t in frames]
    else:
        values = [[int(v) for v in t.split(",")] for t in frames]
        if any(len(v) != groups for v in values):
            raise ValueError(f"expected {groups} comma-separated ids per frame")
    return key, torch.tensor(values, dtype=torch.long).view(len(values), 1 if combine else groups)


def read_token_file(path, groups: int, num_vars: int, combine: bool) -> dict:
    """key -> ids ``(T, G)`` from a finished token file (combined ids are split back into groups)."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            try:
                key, ids = parse_line(line, groups, combine)
            except ValueError as e:
                raise TokenizeError(f"{path}:{n}: {e}") from None
            out[key] = split_ids(ids[:, 0], num_vars, groups) if combine else ids
    return out


# ----------------------------------------------------------------------------- the dump


def read_manifest(path) -> tuple:
    """(root, [(relative_path, frames)]) with a clear error on a bad line."""
    path = Path(path)
    if not path.is_file():
        raise TokenizeError(f"manifest {path} not found")
    with open(path, encoding="utf-8") as f:
        root = f.readline().rstrip("\n")
        rows = []
        for n, line in enumerate(f, start=2):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2 or not parts[1].isdigit():
                raise TokenizeError(f"{path}:{n}: expected 'relative_path<TAB>num_frames', got {line.strip()!r}")
            rows.append((parts[0], int(parts[1])))
    if not rows:
        raise TokenizeError(f"manifest {path} lists no audio files")
    return root, rows


def _completed_keys(out: Path, valid: set, groups: int, combine: bool) -> set:
    """Keys already written to ``out``; drops a last line cut off mid-write (no final newline)."""
    if not out.exists():
        return set()
    with open(out, "rb") as f:
        data = f.read()
    end = data.rfind(b"\n") + 1
    if end < len(data):  # partially written last line: cut it off, it will be redone
        with open(out, "r+b") as f:
            f.truncate(end)
    done = set()
    for n, line in enumerate(data[:end].decode("utf-8").splitlines(), start=1):
        try:
            key, _ = parse_line(line, groups, combine)
        except ValueError as e:
            raise TokenizeError(f"{out}:{n}: cannot resume from a malformed line ({e}); delete the file") from None
        if key not in valid:
            raise TokenizeError(f"{out}:{n}: {key!r} is not in the manifest; was it written for another manifest?")
        if key in done:
            raise TokenizeError(f"{out}:{n}: {key!r} appears twice")
        done.add(key)
    return done


def _write_json_atomic(path: Path, obj: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _reorder(out: Path, keys: list) -> None:
    """Rewrite ``out`` with its lines in manifest order (atomically)."""
    lines = {}
    with open(out, encoding="utf-8") as f:
        for line in f:
            lines[line.split("\t", 1)[0]] = line
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for key in keys:
                f.write(lines[key])
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _batches(rows: list, max_tokens: int, batch_size: int):
    """Longest first (a too-large batch fails at once), each batch under ``max_tokens`` padded samples."""
    order = sorted(range(len(rows)), key=lambda i: -rows[i][1])
    batch, longest = [], 0
    for i in order:
        n = rows[i][1]
        if batch and (len(batch) >= batch_size or max(longest, n) * (len(batch) + 1) > max_tokens):
            yield batch
            batch, longest = [], 0
        batch.append(i)
        longest = max(longest, n)
    if batch:
        yield batch


def _read_audio(path: str, sample_rate: int) -> np.ndarray:
    import soundfile as sf

    try:
        wav, sr = sf.read(path, dtype="float32")
    except (RuntimeError, OSError) as e:
        raise TokenizeError(f"cannot read audio {path}: {e}") from None
    if sr != sample_rate:
        raise TokenizeError(f"{path}: {sr} Hz, but the model was pretrained on {sample_rate} Hz audio")
    if wav.ndim != 1:
        raise TokenizeError(f"{path}: {wav.shape[1]} channels, expected mono")
    return wav


def dump_tokens(checkpoint, manifest, out, *, combine: bool = False, max_tokens: int = 1_600_000,
                batch_size: int = 32, device: str = "cpu", limit: int | None = None, overwrite: bool = False,
                progress: bool = True, tm: TokenizerModel | None = None) -> dict:
    """Write the code ids of every utterance of ``manifest`` to ``out``; return a summary dict.

    Resumes an earlier, interrupted run on the same file. ``limit``: encode at most this many new
    utterances in this call (the file is then left unfinished, in processing order).
    """
    from tqdm import tqdm

    out = Path(out)
    meta_path = out.with_name(out.name + ".json")
    root, rows = read_manifest(manifest)
    keys = [r for r, _ in rows]
    if len(set(keys)) != len(keys):
        raise TokenizeError(f"manifest {manifest} lists a path twice")
    tm = tm or load_tokenizer_model(checkpoint, device)
    meta = dict(checkpoint=str(Path(checkpoint).resolve()), model=tm.model_name, quantizer_fingerprint=tm.fingerprint,
                groups=tm.groups, num_vars=tm.num_vars, combine=combine,
                frame_rate=tm.frame_rate, manifest=str(Path(manifest).resolve()), utterances=len(rows),
                format=("one line per utterance: path<TAB>ids, one id per frame in [0, V^G)" if combine else
                        "one line per utterance: path<TAB>frames, each frame 'g0,g1,...' with ids in [0, V)"))

    out.parent.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for p in (out, meta_path):
            if p.exists():
                p.unlink()
    if out.exists():
        if not meta_path.exists():
            raise TokenizeError(f"{out} exists but {meta_path} does not: not a token file of this tool; "
                                f"delete it or pass --overwrite")
        old = json.loads(meta_path.read_text())
        for k in ("quantizer_fingerprint", "groups", "num_vars", "combine"):
            if old.get(k) != meta[k]:
                raise TokenizeError(f"cannot resume {out}: it was written with {k}={old.get(k)!r}, this run has "
                                    f"{k}={meta[k]!r}; pass --overwrite to start again")
    _write_json_atomic(meta_path, meta)
    done = _completed_keys(out, set(keys), tm.groups, combine)
    todo = [i for i, k in enumerate(keys) if k not in done]
    if limit is not None:
        todo = sorted(todo, key=lambda i: -rows[i][1])[:limit]
    frames_written = 0
    bar = tqdm(total=len(rows), initial=len(done), desc="tokenize", unit="utt", disable=not progress)
    try:
        with open(out, "a", encoding="utf-8") as f:
            for batch in _batches([rows[i] for i in todo], max_tokens, batch_size):
                idx = [todo[j] for j in batch]
                waves = [_read_audio(os.path.join(root, rows[i][0]), tm.sample_rate) for i in idx]
                for i, ids in zip(idx, encode(tm, waves)):
                    f.write(f"{keys[i]}\t{format_ids(ids, tm.num_vars, combine)}\n")
                    f.flush()
                    frames_written += len(ids)
                bar.update(len(idx))
                bar.set_postfix(frames=frames_written)
    finally:
        bar.close()
    finished = len(done) + len(todo) == len(rows)
    if finished:
        _reorder(out, keys)
    return dict(out=str(out), utterances=len(rows), skipped=len(done), encoded=len(todo), frames=frames_written,
                finished=finished)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hypervq-tokenize", description=__doc__, epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="pretraining checkpoint (hypervq_wav2vec2 or wav2vec2 with quantize_targets)")
    p.add_argument("manifest", help="fairseq manifest (.tsv): root, then relative_path<TAB>num_frames")
    p.add_argument("--out", required=True, help="token file to write (OUT.json beside it describes it)")
    p.add_argument("--combine", action="store_true", help="one id per frame, Σ_g idx_g·V^(G-1-g), instead of G ids")
    p.add_argument("--max-tokens", type=int, default=1_600_000, help="padded audio samples per batch (default 100 s)")
    p.add_argument("--batch-size", type=int, default=32, help="utterances per batch at most (default 32)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--limit", type=int, default=None, help="encode at most N new utterances, then stop (resumable)")
    p.add_argument("--overwrite", action="store_true", help="start again instead of resuming an existing OUT")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        tm = load_tokenizer_model(args.checkpoint, args.device)
        print(f"model {tm.model_name}: {tm.groups} groups x {tm.num_vars} codes, "
              f"{tm.frame_rate:g} frames/s, quantizer {tm.fingerprint}", file=sys.stderr)
        s = dump_tokens(args.checkpoint, args.manifest, args.out, combine=args.combine, max_tokens=args.max_tokens,
                        batch_size=args.batch_size, device=args.device, limit=args.limit, overwrite=args.overwrite,
                        progress=not args.no_progress, tm=tm)
    except TokenizeError as e:
        print(f"hypervq-tokenize: error: {e}", file=sys.stderr)
        return 1
    state = "done" if s["finished"] else "unfinished (run again to continue)"
    print(f"{s['out']}: {s['encoded']} utterances encoded ({s['frames']} frames), {s['skipped']} already there; {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
