"""wav2vec 2.0's time masking under autocast: one dtype for ``index_put``.

Why: ``Wav2Vec2Model.apply_mask`` writes the learned ``mask_emb`` (a float32 parameter) into the
masked frames with ``index_put``. Under autocast (fairseq's ``common.amp=true``, or
``torch.autocast`` around a training step) the frames come out of ``post_extract_proj`` in
half precision, and ``index_put`` refuses: "Index put requires the source and destination
dtypes match, got BFloat16 for the destination and Float for the source" (measured on CPU, for
the stock model and ours alike; the same check exists on CUDA). We cast the frames to
``mask_emb``'s dtype before masking; the encoder's autocast-enabled layers cast them back down,
so nothing else changes. Outside autocast (fp32, or a model cast to half as by
``common.fp16``/``common.bf16``) the dtypes already agree and the cast is a no-op.
"""
from __future__ import annotations

import types


def _apply_mask_in_emb_dtype(self, x, *args, **kwargs):
    emb = getattr(self, "mask_emb", None)
    if emb is not None and x.dtype != emb.dtype:
        x = x.to(emb.dtype)
    return type(self).apply_mask(self, x, *args, **kwargs)


def make_masking_autocast_safe(model):
    """Give a wav2vec 2.0 model (or subclass) autocast-safe masking; returns the model."""
    if hasattr(type(model), "apply_mask") and hasattr(model, "mask_emb"):
        model.apply_mask = types.MethodType(_apply_mask_in_emb_dtype, model)
    return model
