"""Every change this plugin makes to fairseq's own behaviour, in one place.

Each patch below names the fairseq function it replaces or wraps, why, and the fairseq versions
it was checked against; ``tests/test_fairseq_patches.py`` fails when fairseq's code no longer has
the call site a patch relies on, or when the patch stops taking effect. :func:`apply_all` applies
the process-wide ones (idempotent); it runs when ``hypervq_fairseq`` is imported with fairseq
installed. Two patches act on one object or one block only and are called by the task:
:func:`seeded_numpy` (around each training step) and :func:`make_masking_autocast_safe` (on each
model it builds).

Checked against: fairseq-fixed 0.12.3.1 (fairseq's main branch with the Python 3.11/3.12
fixes), the version this package installs on Python >= 3.11, with torch 2.14. The patched
functions have the same code in the official fairseq 0.12.2. Each patch says under "Relies on"
which fairseq code it depends on; those are the call sites the tests check.
"""
from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import threading
import types
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from .. import files

logger = logging.getLogger(__name__)

PACKAGE = __name__.split(".")[0]


def _patched(obj) -> bool:
    return bool(getattr(obj, "_hypervq_patch", False))


def _mark(fn):
    fn._hypervq_patch = True
    return fn


# ----------------------------------------------------------------------------- atomic checkpoint copies


def patch_atomic_checkpoint_copy() -> bool:
    """``fairseq.file_io.PathManager.copy``: local copies become atomic.

    ``checkpoint_utils.save_checkpoint`` writes the first checkpoint of a save through a temporary
    file, but makes every other name of the same save (in practice ``checkpoint_last.pt``) with
    ``PathManager.copy``, i.e. ``shutil.copyfile`` straight onto the destination. A SIGKILL, OOM
    kill or pre-emption during that copy leaves a truncated ``checkpoint_last.pt`` and the restart
    fails in ``torch.load``. Local copies now go through :func:`hypervq_fairseq.files.atomic_copy`
    (temporary file, fsync, rename; plain-file permissions); remote paths keep iopath's copy.

    Relies on: ``save_checkpoint`` calling ``PathManager.copy`` on the class of ``fairseq.file_io``.
    """
    from fairseq.file_io import PathManager

    if _patched(PathManager.copy):
        return False
    original = PathManager.copy

    @_mark
    def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        if PathManager.path_requires_pathmanager(src_path) or PathManager.path_requires_pathmanager(dst_path):
            return original(src_path, dst_path, overwrite=overwrite)
        if not overwrite and os.path.exists(dst_path):
            return False
        files.atomic_copy(src_path, dst_path)
        return True

    PathManager.copy = staticmethod(copy)
    return True


# ----------------------------------------------------------------------------- user_dir naming a second copy


class UserDirConflictError(ImportError):
    """``user_dir`` points to a copy of the plugin other than the one already imported."""


def check_user_dir(user_dir: Optional[str]) -> None:
    """Raise :class:`UserDirConflictError` if ``user_dir`` is another copy of this package."""
    import sys

    if not user_dir:
        return
    path = os.path.realpath(os.path.abspath(user_dir))
    if os.path.basename(path) != PACKAGE or PACKAGE not in sys.modules:
        return
    loaded = [os.path.realpath(p) for p in getattr(sys.modules[PACKAGE], "__path__", [])]
    if path in loaded:
        return
    here = loaded[0] if loaded else "?"
    root = os.path.dirname(path)
    has_setup = any(os.path.exists(os.path.join(root, f)) for f in ("setup.py", "pyproject.toml"))
    reinstall = f"pip install -e {root}" if has_setup else "pip install -e <the project folder holding setup.py>"
    raise UserDirConflictError(
        f"user_dir={user_dir!r} is a second copy of {PACKAGE}: the installed plugin is already "
        f"loaded from {here!r}, and fairseq cannot import two packages with the same name.\n"
        f"Fix, one of:\n"
        f"  - drop common.user_dir / --user-dir: the installed plugin registers its models by itself;\n"
        f"  - point it to the installed copy: common.user_dir={here};\n"
        f"  - or install the copy you want instead: {reinstall}"
    )


def patch_user_dir_guard() -> bool:
    """``fairseq.utils.import_user_module``: a second copy of the plugin gets a message with the fix.

    When the installed plugin is loaded (importing ``hypervq_fairseq`` registers it) and
    ``common.user_dir`` / ``--user-dir`` names another folder of the same name, fairseq stops
    with "... is not globally unique. Please rename the directory", which suggests the wrong fix.
    fairseq's programs look the function up as ``utils.import_user_module`` at call time.

    Relies on: ``fairseq_cli.train`` and ``fairseq_cli.validate`` calling ``utils.import_user_module``.
    """
    import fairseq.utils

    if _patched(fairseq.utils.import_user_module):
        return False
    original = fairseq.utils.import_user_module

    @_mark
    def import_user_module(args):
        check_user_dir(getattr(args, "user_dir", None))
        return original(args)

    import_user_module.__doc__ = original.__doc__
    fairseq.utils.import_user_module = import_user_module
    return True


# ----------------------------------------------------------------------------- checkpoints are data


def _allow_fairseq_classes() -> None:
    """fairseq's ``Dictionary`` on the loader's allow-list: fine-tuned checkpoints store the target
    dictionary, whose fields are plain lists and dicts."""
    from fairseq.data.dictionary import Dictionary

    from ..safe_load import allow_class

    allow_class(Dictionary)


def safe_load_checkpoint_to_cpu(path, arg_overrides=None, load_on_all_ranks=False):
    """``fairseq.checkpoint_utils.load_checkpoint_to_cpu``, loading the file as data.

    The same steps as fairseq's (local copy, ``torch.load``, overrides, OmegaConf, upgrade), with
    the file read by :func:`hypervq_fairseq.safe_load.load_checkpoint_file` (weights only, an
    explicit allow-list) and its stored config made safe by
    :func:`~hypervq_fairseq.safe_load.sanitize_config` *before* fairseq reads it: fairseq
    evaluates ``conv_feature_layers`` and a few other strings of that config when it builds the
    model, optimizer or criterion.
    """
    from fairseq.checkpoint_utils import _upgrade_state_dict
    from fairseq.dataclass.utils import overwrite_args_by_name
    from fairseq.file_io import PathManager
    from omegaconf import OmegaConf

    from ..safe_load import load_checkpoint_file, sanitize_config

    _allow_fairseq_classes()

    local_path = PathManager.get_local_path(path)
    if local_path != path and PathManager.path_requires_pathmanager(path):  # a stale cache of a remote file
        with contextlib.suppress(FileNotFoundError):
            os.remove(local_path)
        if load_on_all_ranks:
            torch.distributed.barrier()
        local_path = PathManager.get_local_path(path)
    state = load_checkpoint_file(local_path)
    if not isinstance(state, dict):
        from ..errors import CheckpointError

        raise CheckpointError(f"{path} is not a fairseq checkpoint (it holds a {type(state).__name__})")
    for key in ("cfg", "args"):
        if state.get(key) is not None:
            sanitize_config(state[key], str(path))
    if state.get("args") is not None and arg_overrides is not None:
        for name, value in arg_overrides.items():
            setattr(state["args"], name, value)
    if state.get("cfg") is not None:
        state["cfg"] = OmegaConf.create(state["cfg"], flags={"allow_objects": True})
        if arg_overrides is not None:
            overwrite_args_by_name(state["cfg"], arg_overrides)
    return _upgrade_state_dict(state)


def patch_safe_checkpoint_loading() -> bool:
    """``fairseq.checkpoint_utils.load_checkpoint_to_cpu``: a checkpoint cannot run code.

    Why a patch: every fairseq path that opens a checkpoint (``load_model_ensemble_and_task``, the
    trainer's resume, ``Wav2VecEncoder`` reading ``w2v_path``, ``fairseq-validate``) goes through
    this one function, and the strings it hands on are evaluated inside fairseq's own model
    and optimizer constructors, which no subclass of ours runs before.

    Relies on: those callers looking the function up on the module at call time (the module's own
    ``load_model_ensemble_and_task`` through its globals), ``_upgrade_state_dict`` and
    ``overwrite_args_by_name`` (fairseq 0.12).
    """
    from fairseq import checkpoint_utils

    global fairseq_load_checkpoint_to_cpu
    _allow_fairseq_classes()
    if _patched(checkpoint_utils.load_checkpoint_to_cpu):
        return False
    fairseq_load_checkpoint_to_cpu = checkpoint_utils.load_checkpoint_to_cpu  # kept for the call-site tests
    checkpoint_utils.load_checkpoint_to_cpu = _mark(safe_load_checkpoint_to_cpu)
    return True


fairseq_load_checkpoint_to_cpu = None  # fairseq's own function, once replaced


# ----------------------------------------------------------------------------- several processes on a CPU-only machine


def _infer_launch_init_cpu(cfg) -> None:
    cfg.distributed_init_method = "env://"
    cfg.distributed_world_size = int(os.environ["WORLD_SIZE"])
    cfg.distributed_rank = int(os.environ["RANK"])
    cfg.device_id = 0  # no CUDA device to pick; the trainer runs on CPU
    cfg.distributed_no_spawn = True


def all_gather_list_cpu(data, group=None, max_size=16384):
    """``fairseq.distributed.utils.all_gather_list`` without a CUDA buffer (gloo or any backend)."""
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


def patch_cpu_distributed() -> bool:
    """``fairseq.distributed.utils``: ``torchrun`` with several processes on a machine without CUDA.

    Two functions assume CUDA: ``_infer_torch_distributed_launch_init`` computes
    ``rank % torch.cuda.device_count()`` (ZeroDivisionError before any process group exists), and
    ``all_gather_list`` (how the trainer gathers the wav2vec criterion's logging outputs) allocates
    a ``torch.cuda.ByteTensor``. Both are replaced only when no CUDA device is visible; GPU
    machines keep fairseq's code.

    Relies on: ``infer_init_method`` and ``Trainer._all_gather_list_sync`` looking both functions up
    in ``fairseq.distributed.utils`` at call time.
    """
    if torch.cuda.is_available():
        return False
    from fairseq.distributed import utils as dist_utils

    if _patched(dist_utils.all_gather_list):
        return False
    dist_utils._infer_torch_distributed_launch_init = _mark(_infer_launch_init_cpu)
    dist_utils.all_gather_list = _mark(all_gather_list_cpu)
    return True


# ----------------------------------------------------------------------------- reproducible masks


_NUMPY_LOCK = threading.Lock()


class _SeededRandom:
    """``numpy.random`` whose ``default_rng()`` without a seed is reproducible."""

    def __init__(self, entropy):
        self._sequence = np.random.SeedSequence(entropy)

    def default_rng(self, seed=None):
        if seed is None:
            seed = self._sequence.spawn(1)[0]
        return np.random.default_rng(seed)

    def __getattr__(self, name):
        return getattr(np.random, name)


class _NumpyView:
    def __init__(self, random):
        self.random = random

    def __getattr__(self, name):
        return getattr(np, name)


@contextlib.contextmanager
def seeded_numpy(seed: int, update: int):
    """Within the block, fairseq's mask draws and numpy's global draws follow ``(seed, update)``.

    ``fairseq.data.data_utils.compute_mask_indices`` draws wav2vec 2.0's time masks from
    ``np.random.default_rng(None)`` (fresh OS entropy per sample) unless given a seed, an epoch and
    sample indices, which ``Wav2Vec2Model.apply_mask`` does not pass; its probabilistic rounding and
    layer drop use numpy's global generator. So two runs from one seed differ and a resumed run
    cannot repeat the run it continues. Here numpy's global generator is seeded (and restored
    afterwards) and the name ``np`` inside ``data_utils`` is briefly bound to a view of numpy whose
    unseeded ``default_rng()`` hands out children of one ``SeedSequence((seed, update))``.

    Relies on: ``compute_mask_indices`` calling ``np.random.default_rng`` through the module name ``np``.
    """
    from fairseq.data import data_utils

    with _NUMPY_LOCK:
        original = data_utils.np
        data_utils.np = _NumpyView(_SeededRandom([int(seed), int(update)]))
    state = np.random.get_state()
    np.random.seed((int(seed) * 1_000_003 + int(update)) % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)
        with _NUMPY_LOCK:
            data_utils.np = original


# ----------------------------------------------------------------------------- masking under autocast


def _apply_mask_in_emb_dtype(self, x, *args, **kwargs):
    emb = getattr(self, "mask_emb", None)
    if emb is not None and x.dtype != emb.dtype:
        x = x.to(emb.dtype)
    return type(self).apply_mask(self, x, *args, **kwargs)


def make_masking_autocast_safe(model):
    """``Wav2Vec2Model.apply_mask`` on one model: the frames take ``mask_emb``'s dtype first.

    Under autocast (``common.amp=true``) the frames come out of ``post_extract_proj`` in half
    precision and ``index_put`` of the float32 ``mask_emb`` refuses ("Index put requires the source
    and destination dtypes match"), for the stock model and ours alike. The encoder's
    autocast-enabled layers cast them back down; outside autocast the cast is a no-op.

    Relies on: ``Wav2Vec2Model.apply_mask`` writing ``mask_emb`` with ``index_put``.
    """
    if hasattr(type(model), "apply_mask") and hasattr(model, "mask_emb"):
        model.apply_mask = types.MethodType(_apply_mask_in_emb_dtype, model)
    return model


# ----------------------------------------------------------------------------- resume from the newest loadable checkpoint


_CHECKPOINT_NAME = re.compile(r"checkpoint(?:_last|_best|\d+|_\d+_\d+)(?:-[^/]*)?\.pt")


def loadable(path) -> bool:
    """True when ``path`` is a complete checkpoint file (a zip archive whose members all check out).

    torch saves zip archives whose central directory sits at the end, so a file cut short by a
    kill has none; reading each member's CRC also catches a file damaged in the middle.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False


def _recorded_updates(path: Path) -> int:
    """The update count a complete checkpoint holds, else -1 (memory-mapped: the weights are not read;
    weights only, like every load: a file planted in the save folder is ranked, never run)."""
    from ..safe_load import load_checkpoint_file

    try:
        state = load_checkpoint_file(path, mmap=True)
        return int(state["optimizer_history"][-1]["num_updates"])
    except Exception:  # noqa: BLE001  (any unreadable or foreign file simply ranks last)
        return -1


def _name_rank(path: Path) -> int:
    """Among checkpoints holding the same update, prefer the name that says it: checkpoint_E_U, checkpointE, best."""
    if re.fullmatch(r"checkpoint_\d+_\d+(?:-[^/]*)?\.pt", path.name):
        return 2
    return 1 if re.fullmatch(r"checkpoint\d+(?:-[^/]*)?\.pt", path.name) else 0


def checkpoint_candidates(save_dir, suffix: str = "") -> List[Path]:
    """Checkpoints of ``save_dir`` to resume from: ``checkpoint_last`` first, then the others."""
    folder = Path(save_dir)
    if not folder.is_dir():
        return []
    found = sorted(p for p in folder.iterdir() if p.is_file() and _CHECKPOINT_NAME.fullmatch(p.name)
                   and p.name.endswith(f"{suffix}.pt"))
    last = folder / f"checkpoint_last{suffix}.pt"
    return ([last] if last in found else []) + [p for p in found if p != last]


def choose_resume_checkpoint(save_dir, suffix: str = "") -> Optional[Path]:
    """``checkpoint_last`` if it is complete, else the complete checkpoint with the most updates; logs
    what was passed over and why."""
    ranked = []
    for path in checkpoint_candidates(save_dir, suffix):
        if not loadable(path):
            logger.warning(f"{path} is incomplete or damaged (cut short by a kill during a save?): not resuming from it")
        elif path.name == f"checkpoint_last{suffix}.pt":
            return path
        else:
            ranked.append(((_recorded_updates(path), _name_rank(path)), path))
    return max(ranked, key=lambda item: item[0])[1] if ranked else None


def patch_resume_from_loadable_checkpoint() -> bool:
    """``fairseq.checkpoint_utils.load_checkpoint``: resume from the newest checkpoint that loads.

    fairseq resumes from ``checkpoint_last.pt`` only: a truncated one stops the restart with
    torch's zip error, and a run killed during its first save (which writes ``checkpoint_1_N.pt``
    before copying it to ``checkpoint_last.pt``) starts again from update 0. With the default
    ``checkpoint.restore_file`` we now pick ``checkpoint_last.pt`` if it is complete, else the complete
    checkpoint of the folder that holds the most updates, and say which and why. Leftover
    temporaries of killed saves are removed first (ours, ``.checkpoint*.tmp``, and fairseq's
    ``checkpoint*.pt.tmp`` from ``torch_persistent_save``). Any other ``restore_file`` or
    ``finetune_from_model`` is left to fairseq.

    Relies on: ``fairseq_cli.train.main`` calling ``checkpoint_utils.load_checkpoint`` at call time,
    and fairseq treating the default ``restore_file="checkpoint_last.pt"`` as "resume from the last".
    """
    from fairseq import checkpoint_utils

    if _patched(checkpoint_utils.load_checkpoint):
        return False
    original = checkpoint_utils.load_checkpoint

    @_mark
    def load_checkpoint(cfg, trainer, **passthrough_args):
        if cfg.restore_file != "checkpoint_last.pt" or getattr(trainer, "data_parallel_rank", 0) != 0:
            return original(cfg, trainer, **passthrough_args)
        suffix = trainer.checkpoint_suffix or ""
        for tmp in (files.remove_stale_temporaries(cfg.save_dir, "checkpoint*")
                    + _remove_fairseq_temporaries(cfg.save_dir)):
            logger.info(f"removed {tmp}, left by a save that was interrupted")
        chosen = choose_resume_checkpoint(cfg.save_dir, suffix)
        last = Path(cfg.save_dir) / f"checkpoint_last{suffix}.pt"
        if chosen is None or chosen == last or cfg.finetune_from_model:
            return original(cfg, trainer, **passthrough_args)
        logger.warning(f"resuming from {chosen}: it is the complete checkpoint with the most updates in {cfg.save_dir} "
                       f"({'checkpoint_last is damaged' if last.exists() else 'there is no checkpoint_last'})")
        from omegaconf import open_dict

        with open_dict(cfg):
            cfg.restore_file = str(chosen)
        try:
            return original(cfg, trainer, **passthrough_args)
        finally:
            with open_dict(cfg):
                cfg.restore_file = "checkpoint_last.pt"

    checkpoint_utils.load_checkpoint = load_checkpoint
    return True


def _remove_fairseq_temporaries(save_dir) -> list:
    """fairseq's own ``NAME.pt.tmp`` files (``torch_persistent_save``) left by a kill mid-save."""
    folder = Path(save_dir)
    if not folder.is_dir():
        return []
    removed = [p for p in folder.glob("checkpoint*.pt.tmp") if p.is_file()]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


# ----------------------------------------------------------------------------- all at once


PROCESS_WIDE = (
    patch_safe_checkpoint_loading,
    patch_atomic_checkpoint_copy,
    patch_user_dir_guard,
    patch_cpu_distributed,
    patch_resume_from_loadable_checkpoint,
)


def apply_all() -> list:
    """Apply every process-wide patch (idempotent); the names of those applied by this call."""
    return [p.__name__ for p in PROCESS_WIDE if p()]
