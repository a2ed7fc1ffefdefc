"""Multi-process training on CPU (gloo): two fixes for fairseq 0.12's CUDA assumptions.

Measured with ``torchrun --nproc_per_node 2 fairseq-hydra-train ...
distributed_training.distributed_backend=gloo`` on a machine without CUDA:

1. ``_infer_torch_distributed_launch_init`` computes ``device_id = rank % torch.cuda.device_count()``
   and stops with ``ZeroDivisionError: integer modulo by zero`` before any process group exists.
2. With that past, the first update dies in ``all_gather_list`` (how the trainer gathers the
   wav2vec criterion's logging outputs, which cannot simply be summed): it allocates
   ``torch.cuda.ByteTensor`` -> "Found no NVIDIA driver".

Everything else (gloo process group, ``legacy_ddp`` / ``c10d`` gradient all-reduce, checkpoint
broadcast, the summed-statistics path) already picks the CPU device. :func:`install` replaces
the two functions, only when no CUDA device is visible (GPU machines keep fairseq's code): the
launcher inference takes ``RANK``/``WORLD_SIZE`` from the environment with device 0, and
``all_gather_list`` becomes ``torch.distributed.all_gather_object``, with fairseq's size limit.
Installed when ``hypervq_fairseq.tasks`` is imported (the Hydra plugin does it at start-up).
"""
from __future__ import annotations

import os
import pickle

import torch


def _infer_launch_init_cpu(cfg) -> None:
    cfg.distributed_init_method = "env://"
    cfg.distributed_world_size = int(os.environ["WORLD_SIZE"])
    cfg.distributed_rank = int(os.environ["RANK"])
    cfg.device_id = 0  # no CUDA device to pick; the trainer runs on CPU
    cfg.distributed_no_spawn = True


def all_gather_list_cpu(data, group=None, max_size=16384):
    """``fairseq.distributed.utils.all_gather_list`` without a CUDA buffer (gloo/any backend)."""
    import torch.distributed as dist
    from fairseq import utils
    from fairseq.distributed import utils as dist_utils

    if group is None:
        group = dist_utils.get_global_group()
    data = utils.move_to_cpu(data)
    size = len(pickle.dumps(data)) + 4  # fairseq's limit counts a 4-byte header
    if size > max_size:
        raise ValueError(f"encoded data size ({size}) exceeds max_size ({max_size}); "
                         f"raise common.all_gather_list_size")
    out = [None] * dist_utils.get_world_size(group=group)
    dist.all_gather_object(out, data, group=group)
    return out


def install() -> bool:
    """Patch fairseq for CPU-only multi-process training; True if patched (idempotent)."""
    if torch.cuda.is_available():
        return False
    from fairseq.distributed import utils as dist_utils

    if getattr(dist_utils.all_gather_list, "_hypervq_cpu", False):
        return True
    all_gather_list_cpu._hypervq_cpu = True
    dist_utils._infer_torch_distributed_launch_init = _infer_launch_init_cpu
    dist_utils.all_gather_list = all_gather_list_cpu
    return True
