"""Token quality against phones, with baselines on exactly the same frames: ``hypervq-unit-eval``'s work.

    from hypervq_fairseq.eval.unit_eval import evaluate_units
    results = evaluate_units(["runs/demo/hypervq/ckpt/checkpoint_last.pt", "runs/demo/gumbel/ckpt/checkpoint_last.pt"],
                             "runs/demo/manifest", "valid", names=["hypervq", "gumbel"], out="runs/demo/units")
    results["systems"]["hypervq"]["pnmi"]

Input: a folder with ``SUBSET.tsv`` and its phone alignment ``SUBSET.phn`` (``hypervq-align``);
only utterances with phones are evaluated. Each checkpoint is loaded in eval mode and every
utterance encoded once; its frames (20 ms for the stock conv stack) are labelled with the phone
covering their centre (:mod:`hypervq_fairseq.data.alignment.frames`).

Systems, all on the same frames:

- each checkpoint's quantizer (``NAME``), its ``G`` group ids combined into one id per frame;
- ``random_NAME``: NAME's codes shuffled across frames (same distribution, no signal);
- ``kmeans_layerN_K_NAME``: k-means on transformer layer N of checkpoint NAME;
- ``kmeans_mfcc_K``: k-means on 39-dimensional MFCCs of the same windows,

with K = the number of codes each quantizer really uses on this data, and K = ``kmeans_k``
(100 by default). k-means is fitted on the evaluated utterances' own frames (all of them,
silence included; at most ``max_fit_frames``, drawn with the seed), as unit-discovery
benchmarks allow: no phone label is used to fit it. Scores: :mod:`.units` (PNMI, purities, codes used, entropy, bitrate; per
group and combined) and :mod:`.abx` (triphone ABX within and, with two or more speakers,
across speakers). A system whose PNMI is not above that of its own codes shuffled (same seed),
or whose ABX error within speaker is at or above chance (50%), is flagged.

Outputs in ``out``: ``results.json``, ``results.md`` (the table), ``frames.tsv`` (one row per
phone-labelled frame: utterance, frame, phone, then each system's combined id) and
``cooccurrence_NAME.png`` per system; all written together, atomically.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..data.alignment.frames import UNCOVERED, frame_centres, frame_phones
from ..data.alignment.phn import AlignmentError, Segment, phn_path, read_phn, read_sidecar
from ..data.alignment.phones import SILENCE
from ..data.alignment.speakers import speaker_of
from ..errors import InputError
from .units import contingency, merge_to_k, phone_code_scores, stream_scores

CHANCE_ABX = 0.5
SKIPPED = {"not_selected": "from speakers not aligned (their transcripts are not what they say)",
           "missing_words": "with words missing from the dictionary", "failed": "that could not be aligned",
           "no_alignment": "without alignment"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class FrameCountError(InputError):
    """Two sources of frames (checkpoints, MFCC, the alignment) disagree about an utterance's frames."""


@dataclasses.dataclass
class AlignedSet:
    """The utterances of a manifest that have phones, with their segments and speakers."""

    manifest: Path
    root: str
    rows: List[tuple]  # (key, samples) of the aligned utterances, manifest order
    segments: Dict[str, List[Segment]]
    speakers: Dict[str, str]
    in_manifest: int
    skipped: Counter  # reason kind -> utterances


@dataclasses.dataclass
class System:
    """Codes ``(T, G)`` per utterance from one source."""

    name: str
    kind: str  # quantizer, random, kmeans_layer, kmeans_mfcc
    codes: Dict[str, np.ndarray]
    num_vars: int  # ids per group (V for a quantizer, K for k-means)
    source: str

    @property
    def groups(self) -> int:
        return int(next(iter(self.codes.values())).shape[1])

    def combined(self) -> Dict[str, np.ndarray]:
        """One id per frame, ``Σ_g idx_g · V^(G-1-g)`` (the token files' combined id)."""
        weights = np.array([self.num_vars ** (self.groups - 1 - g) for g in range(self.groups)], dtype=np.int64)
        return {u: c.astype(np.int64) @ weights for u, c in self.codes.items()}


# ----------------------------------------------------------------------------- inputs


MIN_COVERAGE = 0.5     # aligners (flite, pocketsphinx) cover 97-100% of each utterance, silences included
MAX_OVERRUN_S = 0.1    # a segment may end at most this far past its audio's end


def check_coverage(phn: Path, aligned, segments, sample_rate: int) -> float:
    """The fraction of the aligned audio that the segments span; an :class:`AlignmentError` for an
    implausible alignment: one that ends past its audio, or covers less than half of it in all.

    Such alignments (times scaled, another recording's alignment) silently change PNMI: frames
    outside every segment are left out of the score, so it is computed on a different subset.
    """
    spanned = total = 0.0
    for key, n in aligned:
        duration, seg = n / sample_rate, segments[key]
        if seg[-1].end > duration + MAX_OVERRUN_S:
            raise AlignmentError(f"{phn}: {key} is aligned up to {seg[-1].end:.2f} s but its audio lasts "
                                 f"{duration:.2f} s: the alignment is for other audio (or its times are scaled); "
                                 f"rerun hypervq-align")
        spanned += min(seg[-1].end, duration) - max(seg[0].start, 0.0)
        total += duration
    coverage = spanned / total
    if coverage < MIN_COVERAGE:
        raise AlignmentError(f"{phn}: the segments span {100 * coverage:.0f}% of the aligned audio (expected at least "
                             f"{100 * MIN_COVERAGE:.0f}%; aligners cover nearly all of it, silence included): times "
                             f"scaled or cut short? rerun hypervq-align")
    return coverage


def load_aligned(data_dir, subset: str = "valid", sample_rate: int = 16000) -> AlignedSet:
    """The aligned utterances of ``data_dir/SUBSET.tsv``; named errors for a missing or stale alignment."""
    from ..data.manifest import read_manifest

    manifest = Path(data_dir) / f"{subset}.tsv"
    root, rows = read_manifest(manifest)
    phn = phn_path(manifest)
    if not phn.is_file():
        raise AlignmentError(f"{manifest} has no phone alignment ({phn.name} not found): run "
                             f"hypervq-align {Path(data_dir)} --splits {subset}")
    segments = read_phn(phn)
    listed = {k for k, _ in rows}
    foreign = sorted(set(segments) - listed)
    if foreign:
        raise AlignmentError(f"{phn} aligns {len(foreign)} utterance(s) that {manifest.name} does not list (e.g. "
                             f"{foreign[0]}): it belongs to another manifest; rerun hypervq-align")
    meta = read_sidecar(phn)
    skipped = Counter()
    for key, _ in rows:
        if key in segments:
            continue
        reason = ((meta or {}).get("utterances", {}).get(key) or {}).get("reason", "no_alignment")
        skipped[reason.split(":", 1)[0]] += 1
    aligned = [(k, n) for k, n in rows if segments.get(k)]
    if not aligned:
        raise AlignmentError(f"{phn} holds no phones for any utterance of {manifest.name} "
                             f"(skipped: {dict(skipped) or 'none'})")
    if meta is not None:
        from ..data.alignment.align import audio_fingerprint

        for key, _ in aligned:
            recorded = (meta["utterances"].get(key) or {}).get("audio")
            if recorded and recorded != audio_fingerprint(os.path.join(root, key)):
                raise AlignmentError(f"{os.path.join(root, key)} changed since {phn.name} was written: rerun "
                                     f"hypervq-align {Path(data_dir)} --splits {subset}")
    check_coverage(phn, aligned, segments, sample_rate)
    return AlignedSet(manifest, root, aligned, {k: segments[k] for k, _ in aligned},
                      {k: speaker_of(k) for k, _ in aligned}, len(rows), skipped)


def default_name(pm) -> str:
    kind = type(pm.model.quantizer).__name__
    return {"HyperbolicVectorQuantizer": "hypervq", "GumbelVectorQuantizer": "gumbel",
            "EuclideanGumbelQuantizer": "gumbel"}.get(kind, kind.lower())


def check_names(names: Sequence[str]) -> None:
    for n in names:
        if not _NAME.match(n) or n.startswith(("kmeans_", "random_")):
            raise InputError(f"system name {n!r}: use letters, digits, '_', '.', '-' (not starting with "
                             f"'kmeans_' or 'random_', which name the baselines)")
    if len(set(names)) != len(names):
        raise InputError(f"system names must be distinct, got {list(names)}; use --names")


# ----------------------------------------------------------------------------- encoding


def extract(models: Dict[str, object], data: AlignedSet, *, layer: int, geometry: tuple, progress: bool,
            batch_size: int = 16, max_tokens: int = 1_600_000):
    """One pass over the audio: codes and layer-N states per checkpoint, MFCCs, frame labels; counts checked."""
    from tqdm import tqdm

    from ..data.audio import read_audio
    from ..fairseq.encode import encode, layer_states
    from .baselines import mfcc_frames
    from .tokens import batches

    stride, field = geometry
    rate = next(iter(models.values())).sample_rate
    codes = {n: {} for n in models}
    states = {n: {} for n in models}
    mfcc, labels = {}, {}
    with tqdm(total=len(data.rows), desc="encode", unit="utt", disable=not progress) as bar:
        for batch in batches(data.rows, max_tokens, batch_size):
            keys = [data.rows[i][0] for i in batch]
            waves = [read_audio(os.path.join(data.root, k), expected_rate=rate) for k in keys]
            per_model = {n: encode(pm, waves) for n, pm in models.items()}
            for j, (key, wave) in enumerate(zip(keys, waves)):
                frames = {n: int(ids[j].shape[0]) for n, ids in per_model.items()}
                if len(set(frames.values())) > 1:
                    raise FrameCountError(f"{key}: the checkpoints give different frame counts {frames}; compare "
                                          f"checkpoints with the same feature extractor")
                t = next(iter(frames.values()))
                feats = mfcc_frames(wave, sample_rate=rate, stride=stride, receptive_field=field)
                if len(feats) != t:
                    raise FrameCountError(f"{key}: {t} model frames but {len(feats)} MFCC frames of {field} samples "
                                          f"every {stride}; the conv stack's frames cannot be matched")
                duration = len(wave) / rate
                last = data.segments[key][-1].end
                if last > duration + stride / rate:
                    raise AlignmentError(f"{key}: its alignment ends at {last:.3f} s but the audio lasts "
                                         f"{duration:.3f} s: the alignment is for other audio; rerun hypervq-align")
                for n, pm in models.items():
                    codes[n][key] = per_model[n][j].numpy().astype(np.int64)
                    h = layer_states(pm, wave, layer).numpy()
                    if len(h) != t:
                        raise FrameCountError(f"{key}: layer {layer} of {n} has {len(h)} frames, its codes {t}")
                    states[n][key] = h
                mfcc[key] = feats
                labels[key] = frame_phones(data.segments[key], frame_centres(t, stride=stride, receptive_field=field,
                                                                             sample_rate=rate))
            bar.update(len(batch))
    keys = [k for k, _ in data.rows]  # manifest order, whatever the batch order was

    def in_order(d: dict) -> dict:
        return {k: d[k] for k in keys}

    return ({n: in_order(c) for n, c in codes.items()}, {n: in_order(s) for n, s in states.items()}, in_order(mfcc),
            in_order(labels))


# ----------------------------------------------------------------------------- scoring


def score_system(system: System, labels: Dict[str, List[str]], *, frame_rate: float, items, seed: int,
                 abx: bool, abx_options: dict, first_centre: float, matched_k: Optional[int] = None) -> dict:
    """Every number of one system (see the module docstring); ``matched_k``: the K of PNMI at matched K."""
    from .abx import abx_error

    keys = list(labels)
    combined = system.combined()
    all_codes = np.concatenate([combined[k] for k in keys])
    all_groups = np.concatenate([system.codes[k] for k in keys])
    phone_labels = np.array([p for k in keys for p in labels[k]], dtype=object)
    scored = (phone_labels != SILENCE) & (phone_labels != UNCOVERED)

    out = {"kind": system.kind, "source": system.source, "groups": system.groups,
           "codes_available": system.num_vars ** system.groups}
    table, _, _ = contingency(phone_labels[scored], all_codes[scored])
    out.update(phone_code_scores(table))
    out.update(stream_scores(all_codes, frame_rate))
    out["per_group"] = []
    for g in range(system.groups):
        group_table, _, _ = contingency(phone_labels[scored], all_groups[scored, g])
        scores = phone_code_scores(group_table)
        out["per_group"].append({"group": g, **stream_scores(all_groups[:, g], frame_rate),
                                 **{k: scores[k] for k in ("pnmi", "phone_purity", "cluster_purity")}})

    # ABX on the combined ids (None where no triplet exists, e.g. across with one speaker)
    for mode in ("within", "across"):
        result = None
        if abx and (mode == "within" or len({it.speaker for it in items}) > 1):
            result = abx_error(combined, items, frame_shift=1.0 / frame_rate, first_centre=first_centre,
                               across=(mode == "across"), seed=seed, **abx_options)
        out[f"abx_{mode}"] = None if result is None else result.error
        out[f"abx_{mode}_pairs"] = 0 if result is None else result.pairs

    # the floor: the same codes shuffled across frames; and both at matched K
    if system.kind != "random":
        shuffle = np.random.default_rng(seed).permutation(len(all_codes))
        shuffled = all_codes[shuffle]
        floor_table, _, _ = contingency(phone_labels[scored], shuffled[scored])
        out["random_floor_pnmi"] = phone_code_scores(floor_table)["pnmi"]
        out["pnmi_above_floor"] = out["pnmi"] - out["random_floor_pnmi"]
        if matched_k is not None:
            merged = merge_to_k(all_codes, matched_k)
            out["matched_k"] = matched_k
            out["matched_k_reached"] = out["codes_used"] >= matched_k
            out["pnmi_matched"] = phone_code_scores(contingency(phone_labels[scored], merged[scored])[0])["pnmi"]
            merged_floor = merged[shuffle]
            out["random_floor_pnmi_matched"] = phone_code_scores(
                contingency(phone_labels[scored], merged_floor[scored])[0])["pnmi"]
        flags = []
        if out["pnmi"] <= out["random_floor_pnmi"]:
            flags.append("PNMI not above its codes shuffled")
        if out["abx_within"] is not None and out["abx_within"] >= CHANCE_ABX:
            flags.append("ABX within at or above chance")
        out["flags"] = flags
        out["beats_random"] = not flags
    return out


def build_baselines(models, codes, states, mfcc, *, layer: int, kmeans_k: int, seed: int, max_fit_frames: int,
                    progress: bool, kmeans: bool = True) -> List[System]:
    """The quantizers, then per checkpoint its random floor and (``kmeans``) layer k-means, then MFCC k-means."""
    from tqdm import tqdm

    from .baselines import kmeans_codes, kmeans_sizes, random_codes

    systems = [System(n, "quantizer", codes[n], pm.num_vars, f"{type(pm.model.quantizer).__name__} of {pm.path}")
               for n, pm in models.items()]
    used = {s.name: len(np.unique(np.concatenate(list(s.combined().values())))) for s in systems}
    sizes = {n: kmeans_sizes([used[n]], kmeans_k) if kmeans else [] for n in models}
    mfcc_sizes = kmeans_sizes(list(used.values()), kmeans_k) if kmeans else []
    jobs = [(n, k) for n in models for k in sizes[n]] + [(None, k) for k in mfcc_sizes]
    with tqdm(total=len(jobs), desc="k-means", unit="fit", disable=not progress) as bar:
        for n, pm in models.items():
            systems.append(System(f"random_{n}", "random", random_codes(codes[n], seed=seed), pm.num_vars,
                                  f"codes of {n} shuffled across frames (seed {seed})"))
            for k in sizes[n]:
                ids, k_used = kmeans_codes(states[n], k, seed=seed, max_fit_frames=max_fit_frames)
                name = f"kmeans_layer{layer}_{k_used}_{n}"
                if all(s.name != name for s in systems):
                    systems.append(System(name, "kmeans_layer", ids, k_used, f"k-means (K={k_used}) on transformer "
                                          f"layer {layer} of {n}"))
                bar.update(1)
        for k in mfcc_sizes:
            ids, k_used = kmeans_codes(mfcc, k, seed=seed, max_fit_frames=max_fit_frames)
            name = f"kmeans_mfcc_{k_used}"
            if all(s.name != name for s in systems):
                systems.append(System(name, "kmeans_mfcc", ids, k_used, f"k-means (K={k_used}) on 39 MFCC+Δ+ΔΔ"))
            bar.update(1)
    return systems


# ----------------------------------------------------------------------------- the whole evaluation


def evaluate_units(checkpoints: Sequence, data_dir, subset: str = "valid", *, names: Optional[Sequence[str]] = None,
                   layer: Optional[int] = None, kmeans_k: int = 100, seed: int = 0, out=None, abx: bool = True,
                   max_fit_frames: int = 100_000, abx_max_size_group: int = 10, abx_max_x_across: int = 5,
                   device: str = "cpu", progress: bool = True, kmeans_baselines: bool = True,
                   matched_k: Optional[int] = None) -> dict:
    """Evaluate the quantizers of ``checkpoints`` against the phones of ``data_dir/SUBSET.phn``; return results.json's dict.

    ``names``: one per checkpoint (default: ``hypervq``/``gumbel`` from the quantizer's type).
    ``layer``: transformer layer for the k-means baselines (default: the middle one).
    ``out``: folder for results.json, results.md, frames.tsv and the pictures (None: nothing written).
    ``seed``: k-means, shuffling and ABX sampling; the same seed gives the same numbers.
    ``kmeans_baselines=False`` scores the quantizers and their random floors only (the k-means fits
    and their ABX dominate the time; a study of many checkpoints needs them once, not per run).
    ``matched_k``: K of the PNMI at matched K (default: the fewest codes any of the quantizers uses
    here; give a fixed K to compare runs evaluated separately).
    """
    from tqdm import tqdm

    from ..fairseq.checkpoints import load_pretrained
    from ..fairseq.encode import frame_geometry

    if not checkpoints:
        raise InputError("give at least one checkpoint")
    if kmeans_k < 1:
        raise InputError(f"kmeans_k must be >= 1, got {kmeans_k}")
    if matched_k is not None and matched_k < 2:
        raise InputError(f"matched_k must be >= 2 (PNMI of one code is 0), got {matched_k}")
    if out is not None:
        from ..files import check_writable_folder

        check_writable_folder(out, what="--out folder")

    # 1. aligned utterances and models (refusals come before any long work)
    data = load_aligned(data_dir, subset)
    loaded = [load_pretrained(p, device) for p in checkpoints]
    if names:
        names = list(names)
        if len(names) != len(loaded):
            raise InputError(f"{len(names)} names for {len(loaded)} checkpoints; give one --names entry per checkpoint")
    else:  # hypervq, gumbel; two of a kind become hypervq1, hypervq2
        kinds = [default_name(pm) for pm in loaded]
        names = [f"{k}{i + 1}" if kinds.count(k) > 1 else k for i, k in enumerate(kinds)]
    check_names(names)
    models = dict(zip(names, loaded))
    geometries = {n: (frame_geometry(pm), pm.sample_rate) for n, pm in models.items()}
    if len(set(geometries.values())) > 1:
        raise FrameCountError(f"the checkpoints frame audio differently ((stride, receptive field), rate: "
                              f"{geometries}); their codes cannot be compared frame by frame")
    (stride, field), rate = next(iter(geometries.values()))
    frame_rate = rate / stride
    layer = layer or max(1, min(pm.num_layers for pm in models.values()) // 2)

    # 2. one pass over the audio, then the baselines
    codes, states, mfcc, labels = extract(models, data, layer=layer, geometry=(stride, field), progress=progress)
    systems = build_baselines(models, codes, states, mfcc, layer=layer, kmeans_k=kmeans_k, seed=seed,
                              max_fit_frames=max_fit_frames, progress=progress, kmeans=kmeans_baselines)

    # 3. scores (PNMI at matched K: by default at the code count of the quantizer that uses fewest)
    from .abx import triphone_items

    if matched_k is None:
        matched_k = max(2, min(len(np.unique(np.concatenate(list(s.combined().values()))))
                               for s in systems if s.kind == "quantizer"))

    items = triphone_items(data.segments, data.speakers)
    abx_options = {"max_size_group": abx_max_size_group, "max_x_across": abx_max_x_across}
    results = {"systems": {}}
    for system in tqdm(systems, desc="score", unit="system", disable=not progress):
        results["systems"][system.name] = score_system(system, labels, frame_rate=frame_rate, items=items, seed=seed,
                                                       abx=abx, abx_options=abx_options,
                                                       first_centre=field / 2 / rate, matched_k=matched_k)
    flat = [p for k in labels for p in labels[k]]
    kinds = Counter("phone" if p not in (SILENCE, UNCOVERED) else ("silence" if p == SILENCE else "uncovered")
                    for p in flat)
    results["data"] = {
        "manifest": str(data.manifest), "subset": subset, "utterances": len(data.rows),
        "utterances_in_manifest": data.in_manifest, "skipped": dict(data.skipped),
        "speakers": sorted(set(data.speakers.values())), "seconds": round(sum(n for _, n in data.rows) / rate, 3),
        "frame_rate": frame_rate, "frames": {"total": len(flat), "phone": kinds["phone"],
                                             "silence": kinds["silence"], "uncovered": kinds["uncovered"]},
        "coverage": 1 - kinds["uncovered"] / max(1, len(flat)),  # frames inside an alignment segment
        "phones": sorted({p for p in flat if p not in (SILENCE, UNCOVERED)}), "triphone_items": len(items)}
    results["settings"] = {
        "checkpoints": {n: str(pm.path) for n, pm in models.items()}, "layer": layer, "kmeans_k": kmeans_k,
        "matched_k": matched_k,
        "seed": seed, "max_fit_frames": max_fit_frames, "kmeans_fit": "the evaluated utterances' frames, no labels",
        "frame": {"stride": stride, "receptive_field": field},
        "abx": {"items": "triphones, within context", "distance": "codes differ (one-hot cosine), DTW",
                "max_size_group": abx_max_size_group, "max_x_across": abx_max_x_across} if abx else None}
    if out is not None:
        write_outputs(Path(out), results, systems, labels)
    return results


# ----------------------------------------------------------------------------- outputs


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def format_table(results: dict) -> str:
    """``results.md``: what was measured on which frames, then one row per system."""
    d = results["data"]
    f = d["frames"]
    skipped = ", ".join(f"{n} {SKIPPED.get(k, k.replace('_', ' '))}" for k, n in sorted(d["skipped"].items()))
    speakers = ", ".join(d["speakers"][:8]) + (", ..." if len(d["speakers"]) > 8 else "")
    lines = [
        f"Token quality against phones on {d['utterances']} of {d['utterances_in_manifest']} utterances of "
        f"{Path(d['manifest']).name}, speaker(s) {speakers}: {d['seconds']:.1f} s, {f['total']} frames of "
        f"{1000 / d['frame_rate']:.0f} ms, {f['phone']} with a phone (scored), {f['silence']} silence, "
        f"{f['uncovered']} without alignment (coverage {100 * d.get('coverage', 1):.1f}%). "
        f"Skipped: {skipped or 'none'}.",
        "",
        f"| system | PNMI ↑ | PNMI − floor ↑ | PNMI at K={results['settings']['matched_k']} ↑ | phone purity ↑ | "
        "cluster purity ↑ | ABX within ↓ | ABX across ↓ | codes used | bits/frame | bitrate (bit/s) | below random? |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in results["systems"].items():
        flag = "–" if s["kind"] == "random" else ("**yes**: " + "; ".join(s["flags"]) if s["flags"] else "no")
        above = "–" if "pnmi_above_floor" not in s else f"{s['pnmi_above_floor']:.3f}"
        matched = "–" if "pnmi_matched" not in s else (f"{s['pnmi_matched']:.3f}" + ("" if s["matched_k_reached"] else "*"))
        lines.append(f"| {name} | {s['pnmi']:.3f} | {above} | {matched} | {s['phone_purity']:.3f} | {s['cluster_purity']:.3f} | "
                     f"{_pct(s['abx_within'])} | {_pct(s['abx_across'])} | {s['codes_used']} of "
                     f"{s['codes_available']} | {s['entropy_bits']:.2f} | {s['bitrate_bps']:.0f} | {flag} |")
    best = max((n for n, s in results["systems"].items() if s["kind"] != "random"),
               key=lambda n: results["systems"][n]["pnmi"])
    layer = results["settings"]["layer"]
    lines += ["", f"Highest PNMI: {best}. Baselines: random_NAME = NAME's codes shuffled across frames; "
                  f"kmeans_layer{layer}_K_NAME = k-means on transformer layer {layer} of NAME; kmeans_mfcc_K = "
                  f"k-means on MFCC+Δ+ΔΔ; K = codes a quantizer uses, and {results['settings']['kmeans_k']}. "
                  f"ABX: triphones within context, '–' = no triplet (across needs two speakers). "
                  f"PNMI − floor: minus the PNMI of the same codes shuffled; PNMI at K: the K − 1 most frequent codes "
                  f"kept, the rest merged into one (no label used); * = the system uses fewer than K codes."]
    return "\n".join(lines)


def write_outputs(out: Path, results: dict, systems: List[System], labels: Dict[str, List[str]]) -> None:
    """results.json, results.md, frames.tsv and one picture per system, all replaced together."""
    from ..files import atomic_write_all
    from .cooccurrence import cooccurrence_png

    combined = {s.name: s.combined() for s in systems}

    def frames_tsv(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\t".join(["utterance", "frame", "phone", *combined]) + "\n")
            for key, phones in labels.items():
                columns = [combined[n][key] for n in combined]
                for t, phone in enumerate(phones):
                    if phone not in (SILENCE, UNCOVERED):
                        f.write("\t".join([key, str(t), phone, *(str(int(c[t])) for c in columns)]) + "\n")

    files = {out / "results.json": json.dumps(results, indent=1) + "\n", out / "results.md": format_table(results) + "\n",
             out / "frames.tsv": frames_tsv}
    for s in systems:
        codes = np.concatenate([combined[s.name][k] for k in labels])
        phones = np.array([p for k in labels for p in labels[k]], dtype=object)
        scored = (phones != SILENCE) & (phones != UNCOVERED)
        table, phone_values, _ = contingency(phones[scored], codes[scored])
        r = results["systems"][s.name]
        files[out / f"cooccurrence_{s.name}.png"] = cooccurrence_png(
            table, list(phone_values), title=f"{s.name}: p(phone | code), PNMI {r['pnmi']:.3f}, "
                                             f"{r['codes_used']} codes used")
    atomic_write_all(files)
