"""Token files: the code ids of every utterance of a manifest, one line each, and their sidecar.

Format, one line per utterance, keyed by its manifest path (relative to the manifest's root)::

    train-clean-100/103/1240/103-1240-0000.flac<TAB>17,3 17,3 250,41 ...     (per group: g0,g1,...)
    train-clean-100/103/1240/103-1240-0000.flac<TAB>5443 5443 80041 ...      (combined)

Combined ids fold the G group ids of a frame into one id ``Σ_g idx_g · V^(G-1-g)`` (fairseq's
``GumbelVectorQuantizer.to_codebook_index``), in ``[0, V^G)``. The sidecar ``OUT.json`` records
the checkpoint, G, V, the frame rate, a fingerprint of the quantizer's weights, the number of
utterances and frames, and whether the file is complete.

Complete or nothing: while a dump runs, lines are appended (and flushed one by one) to
``OUT.partial``; ``OUT`` itself appears, in manifest order and atomically, only when every
utterance is done, and the sidecar then says ``"complete": true``. Rerunning the same command
after an interruption resumes from ``OUT.partial`` (a last line cut off mid-write is redone).
Every reader (:func:`read_token_file`) checks the file against its sidecar and refuses a missing,
partial or inconsistent one with a message that says how to finish it.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, Optional

import torch

from ..errors import HyperVQError
from ..files import atomic_write_json, atomic_write_lines, check_writable_folder, disk_full_error, exclusive_lock


class TokenizeError(HyperVQError, RuntimeError):
    """A token file that cannot be written or read as asked: mismatch, partial file, bad line."""


def sidecar_of(path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")


def partial_of(path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".partial")


# ----------------------------------------------------------------------------- ids <-> text


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
    """``(key, ids (T, G or 1))`` from one line; raises ValueError on a malformed line."""
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


# ----------------------------------------------------------------------------- reading


def read_sidecar(path) -> dict:
    """The sidecar of token file ``path``, checked for the fields readers need."""
    path, meta_path = Path(path), sidecar_of(path)
    if not meta_path.is_file():
        partial = partial_of(path)
        extra = f" ({partial} holds an unfinished run: rerun its hypervq-tokenize command)" if partial.exists() else ""
        raise TokenizeError(f"{meta_path} not found: it records G, V and completeness of {path} "
                            f"(hypervq-tokenize writes it){extra}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TokenizeError(f"{meta_path} is not the JSON sidecar hypervq-tokenize writes ({e})") from None
    missing = [k for k in ("groups", "num_vars", "combine") if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise TokenizeError(f"{meta_path} lacks {', '.join(missing)}: not a sidecar of hypervq-tokenize")
    return meta


def read_token_file(path) -> Dict[str, torch.Tensor]:
    """key -> ids ``(T, G)`` from a complete token file (combined ids are split back into groups).

    Refuses a file that is missing, still being written (or cut short by a kill), a folder, or
    whose lines disagree with the sidecar, saying how to finish or redo it.
    """
    path = Path(path)
    meta = read_sidecar(path)
    groups, num_vars, combine = int(meta["groups"]), int(meta["num_vars"]), bool(meta["combine"])
    redo = "rerun the hypervq-tokenize command that wrote it (it resumes), or pass --overwrite"
    if meta.get("complete") is False or not path.exists():
        raise TokenizeError(f"{path} is unfinished ({meta.get('done', 0)} of {meta.get('utterances', '?')} utterances "
                            f"in {partial_of(path).name}): {redo}")
    if path.is_dir():
        raise TokenizeError(f"{path} is a folder, not a token file")
    out = {}
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                try:
                    key, ids = parse_line(line, groups, combine)
                except ValueError as e:
                    raise TokenizeError(f"{path}:{n}: {e}") from None
                if ids.numel() and (ids.min() < 0 or ids.max() >= (num_vars ** groups if combine else num_vars)):
                    raise TokenizeError(f"{path}:{n}: code id out of range for V={num_vars}, G={groups}")
                out[key] = split_ids(ids[:, 0], num_vars, groups) if combine else ids
    except UnicodeDecodeError as e:
        raise TokenizeError(f"{path} is not a text token file ({e})") from None
    expected = meta.get("utterances")
    if expected is not None and len(out) != int(expected):
        raise TokenizeError(f"{path} holds {len(out)} utterances but its sidecar says {expected}: the file was "
                            f"changed or cut after it was written; {redo}")
    return out


# ----------------------------------------------------------------------------- writing


def _completed_keys(partial: Path, valid: set, groups: int, combine: bool) -> set:
    """Keys already in ``partial``; drops a last line cut off mid-write (no final newline)."""
    if not partial.exists():
        return set()
    with open(partial, "rb") as f:
        data = f.read()
    end = data.rfind(b"\n") + 1
    if end < len(data):  # partially written last line: cut it off, it will be redone
        with open(partial, "r+b") as f:
            f.truncate(end)
    done = set()
    for n, line in enumerate(data[:end].decode("utf-8", errors="replace").splitlines(), start=1):
        try:
            key, _ = parse_line(line, groups, combine)
        except ValueError as e:
            raise TokenizeError(f"{partial}:{n}: cannot resume from a malformed line ({e}); pass --overwrite") from None
        if key not in valid:
            raise TokenizeError(f"{partial}:{n}: {key!r} is not in the manifest; was it written for another manifest?")
        if key in done:
            raise TokenizeError(f"{partial}:{n}: {key!r} appears twice")
        done.add(key)
    return done


def read_listed(encoder, root: str, rows: list, batch: list) -> tuple:
    """``(waves, paths)`` of the manifest ``rows`` in ``batch``, each checked against what the manifest says.

    A file whose decoded length is not the manifest's frame count (batching budgets use the listed
    counts: a stale manifest) or that is shorter than the feature extractor's receptive field (no
    frame at all) is a :class:`TokenizeError` naming the file.
    """
    from ..data.audio import read_audio
    from ..fairseq.encode import frame_geometry

    _, field = frame_geometry(encoder)
    paths = [os.path.join(root, rows[i][0]) for i in batch]
    waves = []
    for i, path in zip(batch, paths):
        wave = read_audio(path, expected_rate=encoder.sample_rate)
        if len(wave) != rows[i][1]:
            raise TokenizeError(f"{path}: {len(wave)} samples decoded, the manifest lists {rows[i][1]}: the file "
                                f"changed after the manifest was written; rebuild it with hypervq-manifest")
        if len(wave) < field:
            raise TokenizeError(f"{path}: {len(wave)} samples, shorter than the model's receptive field of {field} "
                                f"samples ({1000 * field / encoder.sample_rate:.0f} ms), so it has no frame to code; "
                                f"leave it out of the manifest")
        waves.append(wave)
    return waves, paths


def encode_named(encoder, waves: list, paths: list) -> list:
    """``encode(encoder, waves)``; a frame without a code (NaN/Inf features) is reported by file name.

    The quantizer refuses non-finite frames but only knows their place in the padded batch, so on
    that error each file of the batch is encoded alone to find the culprit.
    """
    from ..errors import NonFiniteInputError
    from ..fairseq.encode import encode

    try:
        return encode(encoder, waves)
    except NonFiniteInputError:
        for wave, path in zip(waves, paths):
            try:
                encode(encoder, [wave])
            except NonFiniteInputError:
                raise TokenizeError(f"{path}: the model's features of this file hold NaN or Inf, which have no "
                                    f"code; audio samples far outside [-1, 1] overflow the feature extractor: "
                                    f"check or rescale the file") from None
        raise


def batches(rows: list, max_tokens: int, batch_size: int):
    """Indices into ``rows`` ((path, frames) pairs), longest first, each batch under ``max_tokens`` padded samples."""
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


def lock_of(path) -> Path:
    """``.OUT.lock``: held while a run writes ``OUT`` and its sidecar (one run per output at a time)."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def dump_tokens(encoder, manifest, out, *, combine: bool = False, max_tokens: int = 1_600_000, batch_size: int = 32,
                limit: Optional[int] = None, overwrite: bool = False, progress: bool = True) -> dict:
    """Write the code ids of every utterance of ``manifest`` to ``out``; return a summary dict.

    ``encoder`` is a :class:`hypervq_fairseq.fairseq.checkpoints.PretrainedModel`. Resumes an
    interrupted run on the same file. ``limit``: encode at most this many new utterances in this
    call (the file then stays unfinished, in ``OUT.partial``). Two runs on one ``out`` cannot
    overlap: the second is refused, naming the first (``.OUT.lock``).
    """
    out = Path(out)
    check_writable_folder(out.parent, what="--out folder")
    if out.is_dir():
        raise TokenizeError(f"--out {out} is a folder; give a file name, e.g. {out / 'train.tok'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(lock_of(out), what=f"--out {out}"):
        return _dump_tokens(encoder, manifest, out, combine=combine, max_tokens=max_tokens, batch_size=batch_size,
                            limit=limit, overwrite=overwrite, progress=progress)


def _dump_tokens(encoder, manifest, out: Path, *, combine, max_tokens, batch_size, limit, overwrite, progress) -> dict:
    from tqdm import tqdm

    from ..data.manifest import read_manifest
    from ..fairseq.checkpoints import tensors_fingerprint

    meta_path, partial = sidecar_of(out), partial_of(out)
    root, rows = read_manifest(manifest)
    keys = [r for r, _ in rows]
    if len(set(keys)) != len(keys):
        raise TokenizeError(f"manifest {manifest} lists a path twice")
    pm = encoder
    meta = dict(checkpoint=str(Path(pm.path).resolve()), model=pm.model_name, quantizer_fingerprint=pm.fingerprint,
                groups=pm.groups, num_vars=pm.num_vars, combine=combine, frame_rate=pm.frame_rate,
                manifest=str(Path(manifest).resolve()), utterances=len(rows), complete=False, done=0,
                # by content: a resume must not mix two corpora or two models under the same names
                manifest_sha256=hashlib.sha256(Path(manifest).read_bytes()).hexdigest(),
                model_fingerprint=tensors_fingerprint(pm.model.state_dict()),
                format=("one line per utterance: path<TAB>ids, one id per frame in [0, V^G)" if combine else
                        "one line per utterance: path<TAB>frames, each frame 'g0,g1,...' with ids in [0, V)"))

    # 1. a fresh start, a resume, or a refusal to mix two models' ids
    out.parent.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for p in (out, meta_path, partial):
            p.unlink(missing_ok=True)
    if out.exists() or partial.exists():
        if not meta_path.exists():
            raise TokenizeError(f"{out} exists but {meta_path} does not: not a token file of this tool; "
                                f"delete it or pass --overwrite")
        old = read_sidecar(out)
        for k in ("quantizer_fingerprint", "model_fingerprint", "groups", "num_vars", "combine", "manifest",
                  "manifest_sha256"):
            if old.get(k) != meta[k]:
                raise TokenizeError(f"cannot resume {out}: it was written with {k}={old.get(k)!r}, this run has "
                                    f"{k}={meta[k]!r}; pass --overwrite to start again")
        if old.get("complete") and out.exists() and not partial.exists():
            return dict(out=str(out), utterances=len(rows), skipped=len(rows), encoded=0, frames=0, finished=True)
    done = _completed_keys(partial, set(keys), pm.groups, combine)
    meta["done"] = len(done)
    atomic_write_json(meta_path, meta)
    todo = [i for i, k in enumerate(keys) if k not in done]
    if limit is not None:
        todo = sorted(todo, key=lambda i: -rows[i][1])[:limit]

    # 2. encode in batches, appending one flushed line per utterance to OUT.partial
    frames_written = 0
    try:
        with tqdm(total=len(rows), initial=len(done), desc="tokenize", unit="utt", disable=not progress) as bar, \
                open(partial, "a", encoding="utf-8") as f:
            for batch in batches([rows[i] for i in todo], max_tokens, batch_size):
                idx = [todo[j] for j in batch]
                waves, paths = read_listed(pm, root, rows, idx)
                for i, ids in zip(idx, encode_named(pm, waves, paths)):
                    f.write(f"{keys[i]}\t{format_ids(ids, pm.num_vars, combine)}\n")
                    f.flush()
                    frames_written += len(ids)
                bar.update(len(idx))
                bar.set_postfix(frames=frames_written)
    except OSError as e:
        named = disk_full_error(e, partial, after="the utterances written so far are kept: rerun to resume")
        if named is not None:
            raise named from None
        raise

    # 3. complete: OUT in manifest order, then the sidecar says so
    encoded = len(todo)
    finished = len(done) + encoded == len(rows)
    if finished:
        lines = {}
        with open(partial, encoding="utf-8") as f:
            for line in f:
                lines[line.split("\t", 1)[0]] = line.rstrip("\n")
        atomic_write_lines(out, (lines[k] for k in keys))
        meta.update(complete=True, done=len(rows), frames=sum(len(line.split("\t", 1)[1].split()) for line in lines.values()))
        atomic_write_json(meta_path, meta)
        partial.unlink(missing_ok=True)
    else:
        meta["done"] = len(done) + encoded
        atomic_write_json(meta_path, meta)
    return dict(out=str(out), utterances=len(rows), skipped=len(done), encoded=encoded, frames=frames_written,
                finished=finished)


def encode_manifest(encoder, manifest, *, max_tokens: int = 1_600_000, batch_size: int = 32, progress: bool = True) -> Dict[str, torch.Tensor]:
    """Code ids ``(T, G)`` of every utterance of ``manifest``, in memory, keyed by manifest path."""
    from tqdm import tqdm

    from ..data.manifest import read_manifest

    root, rows = read_manifest(manifest)
    out: Dict[str, torch.Tensor] = {}
    with tqdm(total=len(rows), desc="encode", unit="utt", disable=not progress) as bar:
        for batch in batches(rows, max_tokens, batch_size):
            waves, paths = read_listed(encoder, root, rows, batch)
            for i, ids in zip(batch, encode_named(encoder, waves, paths)):
                out[rows[i][0]] = ids
            bar.update(len(batch))
    return {k: out[k] for k, _ in rows}

