"""wav2vec 2.0 with HyperVQ in place of fairseq's ``GumbelVectorQuantizer``.

Why a subclass: everything that makes wav2vec 2.0 pretraining work (masking, negatives,
codebook negatives, the diversity loss from ``prob_perplexity``, the feature penalty,
``quantize()``, ``remove_pretraining_modules``) lives in fairseq's ``Wav2Vec2Model``.
HyperVQ honours the stock quantizer's interface, so we build the stock model and swap the
quantizer modules after ``super().__init__``; the stock ``forward`` runs unchanged.

Monitoring: with ``quantizer_diagnostics`` on, the output dict also carries, for both quantizer
types, the selection statistics ``sample_is_argmax``, ``logit_gap`` and ``logit_std`` (mean over
groups, and ``_g{i}`` per group; see ``quantizers/selection.py``) and ``dead_codes`` (codes that no
frame picked during the last ``dead_code_window`` updates, counted over all groups); for HyperVQ
also the per-group perplexities ``code_perplexity_g{i}`` / ``prob_perplexity_g{i}`` and
``hyperbolic_radius`` (mean distance to the origin of the quantizer's inputs in the ball).
The wav2vec criterion logs those named in ``criterion.log_keys``; see ``configs/``.

The same class runs the stock baseline with ``quantizer_type: gumbel`` (fairseq's own
``GumbelVectorQuantizer``, watched through hooks that change nothing it computes), so that the
two configurations differ by one key.

Registered when ``hypervq_fairseq`` is imported (the installed Hydra plugin does this inside
fairseq's programs; ``common.user_dir`` / ``--user-dir`` do it too). The config is checked
before anything is built, whatever the task (:mod:`..config_checks`)::

    fairseq-hydra-train --config-name hypervq_w2v2_tiny task.data=MANIFEST_DIR
"""

import ast
from dataclasses import dataclass, field
from typing import Optional, Tuple

import torch
import torch.nn as nn
from fairseq.dataclass import ChoiceEnum
from fairseq.models import register_model
from fairseq.models.wav2vec.wav2vec2 import Wav2Vec2Config, Wav2Vec2Model

from ...quantizers import HyperbolicVectorQuantizer
from ...quantizers.hyperbolic_vq import (CLIP_MODES, DEFAULT_CLIP_MODE, DEFAULT_CLIP_RADIUS, DEFAULT_CURVATURE,
                                          DEFAULT_LOGIT_SCALE)
from ...quantizers.perplexity import code_usage
from ...quantizers.selection import KEYS as SELECTION_KEYS
from ...quantizers.selection import per_group, selection_stats
from ...safe_load import safe_config_string
from ..config_checks import check_model_config

QUANTIZER_CHOICES = ChoiceEnum(["hyperbolic", "gumbel"])
CLIP_CHOICES = ChoiceEnum(list(CLIP_MODES))

DIAGNOSTIC_KEYS = ("dead_codes", "hyperbolic_radius")
DIAGNOSTIC_PREFIXES = ("code_perplexity_g", "prob_perplexity_g") + SELECTION_KEYS


@dataclass
class HyperVQWav2Vec2Config(Wav2Vec2Config):
    quantizer_type: QUANTIZER_CHOICES = field(
        default="hyperbolic",
        metadata={"help": "hyperbolic: HyperVQ; gumbel: fairseq's stock GumbelVectorQuantizer (baseline)"},
    )
    hyperbolic_curvature: float = field(
        default=DEFAULT_CURVATURE, metadata={"help": "curvature c > 0 of the Poincaré ball {x : c|x|^2 < 1}"}
    )
    hyperbolic_learn_curvature: bool = field(
        default=False, metadata={"help": "learn log(c) with the other parameters"}
    )
    hyperbolic_clip_radius: Optional[float] = field(
        default=DEFAULT_CLIP_RADIUS,
        metadata={"help": "feature clipping: bound on sqrt(c)*|v| before exp_0, in units of the ball's radius "
                          "(null: no clipping, the paper)"},
    )
    hyperbolic_clip_mode: CLIP_CHOICES = field(
        default=DEFAULT_CLIP_MODE,
        metadata={"help": "hard: rows beyond the clip radius land on it; soft: radius*tanh(|v|/radius), order kept"},
    )
    hyperbolic_logit_scale: float = field(
        default=DEFAULT_LOGIT_SCALE,
        metadata={"help": "the MLR logits are multiplied by this before the Gumbel softmax (1: the paper's)"}
    )
    hyperbolic_learn_logit_scale: bool = field(
        default=False, metadata={"help": "learn the logit scale (one per group)"}
    )
    hyperbolic_r_init: Tuple[float, float] = field(
        default=(0.1, 0.5),
        metadata={"help": "range (low, high) of the uniform initial hyperplane offsets r_k (not (0, 0))"},
    )
    hyperbolic_reseed_every: int = field(
        default=0, metadata={"help": "every N updates, move hyperplanes no frame chose onto frames of the batch (0: off)"}
    )
    quantizer_diagnostics: bool = field(
        default=True,
        metadata={"help": "add per-group perplexities, dead codes and the mean hyperbolic radius to the output"},
    )
    dead_code_window: int = field(
        default=100, metadata={"help": "dead codes are those unused during this many recent updates"}
    )


def _as_pair(value) -> Tuple[float, float]:
    """``(low, high)`` from a tuple, a list or the string form fairseq's argparse tools pass."""
    if isinstance(value, str):
        value = ast.literal_eval(value)
    pair = tuple(float(v) for v in value)
    if len(pair) != 2:
        raise ValueError(f"model.hyperbolic_r_init must be (low, high), got {value!r}")
    return pair


class DeadCodeMonitor(nn.Module):
    """Which codes were picked during each of the last ``window`` updates.

    A ring of boolean masks ``(window, G, V)``, one slot per update; ``set_num_updates``
    (reached through ``BaseFairseqModel.set_num_updates``) moves to the next slot and clears
    it. Not saved in checkpoints: after a resume the window refills from empty.
    """

    def __init__(self, groups: int, num_vars: int, window: int):
        super().__init__()
        if window < 1:
            raise ValueError(f"model.dead_code_window must be >= 1, got {window}")
        self.window = window
        self.register_buffer("used", torch.zeros(window, groups, num_vars, dtype=torch.bool), persistent=False)
        self.slot = 0
        self.observed = False

    def set_num_updates(self, num_updates: int) -> None:
        slot = num_updates % self.window
        if slot != self.slot:
            self.used[slot] = False
            self.slot = slot

    @torch.no_grad()
    def observe(self, code_counts: torch.Tensor) -> None:
        self.used[self.slot] |= code_counts.to(self.used.device) > 0
        self.observed = True

    def dead_codes(self) -> Optional[int]:
        """Codes (all groups) unused in the window; None before any training batch was seen."""
        if not self.observed:
            return None
        return int((~self.used.any(dim=0)).sum())


@register_model("hypervq_wav2vec2", dataclass=HyperVQWav2Vec2Config)
class HyperVQWav2Vec2Model(Wav2Vec2Model):
    def __init__(self, cfg: HyperVQWav2Vec2Config):
        check_model_config(cfg)  # before fairseq builds its stock quantizer, for every task
        # fairseq's constructor evaluates this string: it gets the literal text of what the safe parser read
        cfg.conv_feature_layers = safe_config_string("conv_feature_layers", cfg.conv_feature_layers,
                                                     "model.conv_feature_layers")
        super().__init__(cfg)
        self.monitor = None
        self._diagnostics = None
        self._capturing = False
        self._stock_logits = None
        if cfg.quantizer_type == "hyperbolic":
            final_dim = cfg.final_dim if cfg.final_dim > 0 else cfg.encoder_embed_dim
            if self.quantizer is not None:
                self.quantizer = self._hyperbolic_quantizer(cfg, cfg.latent_dim if cfg.latent_dim > 0 else final_dim)
            if self.input_quantizer is not None:
                if cfg.same_quantizer and self.quantizer is not None:
                    self.input_quantizer = self.quantizer
                else:
                    vq_dim = cfg.latent_dim if cfg.latent_dim > 0 else cfg.encoder_embed_dim
                    self.input_quantizer = self._hyperbolic_quantizer(cfg, vq_dim)

        # fairseq reports the target quantizer's statistics when both exist; so do we
        watched = self.quantizer if self.quantizer is not None else self.input_quantizer
        if watched is None or not cfg.quantizer_diagnostics:
            return
        self.monitor = DeadCodeMonitor(cfg.latent_groups, cfg.latent_vars, cfg.dead_code_window)
        if cfg.quantizer_type == "hyperbolic":
            watched.register_forward_hook(self._capture_diagnostics)
        else:
            self._watch_stock_quantizer(watched)

    def _hyperbolic_quantizer(self, cfg: HyperVQWav2Vec2Config, vq_dim: int) -> HyperbolicVectorQuantizer:
        return HyperbolicVectorQuantizer(
            dim=self.embed,  # channels of the feature extractor's last conv layer
            num_vars=cfg.latent_vars,
            temp=cfg.latent_temp,
            groups=cfg.latent_groups,
            combine_groups=False,
            vq_dim=vq_dim,
            time_first=True,
            weight_proj_depth=cfg.quantizer_depth,
            weight_proj_factor=cfg.quantizer_factor,
            curvature=cfg.hyperbolic_curvature,
            learn_curvature=cfg.hyperbolic_learn_curvature,
            clip_radius=cfg.hyperbolic_clip_radius,
            clip_mode=str(cfg.hyperbolic_clip_mode),
            r_init=_as_pair(cfg.hyperbolic_r_init),
            logit_scale=float(cfg.hyperbolic_logit_scale),
            learn_logit_scale=cfg.hyperbolic_learn_logit_scale,
            diagnostics=cfg.quantizer_diagnostics,
            reseed_every=int(cfg.hyperbolic_reseed_every),
        )

    @classmethod
    def build_model(cls, cfg: HyperVQWav2Vec2Config, task=None):
        return cls(cfg)

    def _capture_diagnostics(self, module, inputs, output) -> None:
        if self._capturing:  # only inside forward(), not quantize()
            self._diagnostics = output

    def _watch_stock_quantizer(self, quantizer: nn.Module) -> None:
        """Selection statistics and code usage of fairseq's ``GumbelVectorQuantizer``, from the outside.

        Its logits are the output of ``weight_proj``; the code it sampled is the ``targets`` it
        returns when called with ``produce_targets=True`` (wav2vec 2.0 calls it with False, and
        ignores the extra key). Nothing about its computation changes.
        """
        def ask_for_targets(module, args, kwargs):
            if self._capturing:
                return args[:1], {**kwargs, "produce_targets": True}
            return None

        def keep_logits(module, inputs, output):
            if self._capturing:
                self._stock_logits = output

        def capture(module, inputs, output):
            if not self._capturing or self._stock_logits is None:
                return
            logits = self._stock_logits.view(-1, module.groups, module.num_vars)
            sampled = output["targets"].reshape(-1, module.groups)
            self._diagnostics = {**per_group(selection_stats(logits, sampled if module.training else None)),
                                 "code_counts": code_usage(logits.argmax(-1), module.num_vars)}
            self._stock_logits = None

        quantizer.register_forward_pre_hook(ask_for_targets, with_kwargs=True)
        quantizer.weight_proj.register_forward_hook(keep_logits)
        quantizer.register_forward_hook(capture)

    def forward(self, *args, **kwargs):
        self._diagnostics, self._capturing = None, True
        try:
            result = super().forward(*args, **kwargs)
        finally:
            diag, self._diagnostics, self._capturing = self._diagnostics, None, False
        if diag is None or "prob_perplexity" not in result:
            return result

        # per-group perplexities, selection statistics, mean radius, and dead codes over the recent window
        for key, value in diag.items():
            if key.startswith(DIAGNOSTIC_PREFIXES) or key == "hyperbolic_radius":
                result[key] = value
        if self.training:
            self.monitor.observe(diag["code_counts"])
        dead = self.monitor.dead_codes()
        if dead is not None:
            result["dead_codes"] = dead
        return result

    def remove_pretraining_modules(self, last_layer=None):
        super().remove_pretraining_modules(last_layer=last_layer)
        self.monitor = None
