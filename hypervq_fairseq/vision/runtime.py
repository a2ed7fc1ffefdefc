"""Process settings the vision subcommands share: CPU threads and the device a model lives on."""
from __future__ import annotations

import torch


def device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def set_threads(threads: int) -> None:
    """``threads`` > 0 sets torch's CPU threads; 0 keeps torch's default."""
    if threads and threads > 0:
        torch.set_num_threads(threads)
