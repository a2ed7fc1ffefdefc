"""``hypervq_audio_pretraining``: fairseq's ``audio_pretraining`` task, hardened.

A strict superset of the stock task (same config keys and datasets, plus ``audio_check``):

* **Bad input fails at start-up, by name.** Loading a split checks its manifest (syntax, audio
  root) and every file it lists (missing, unreadable, empty, wrong rate, not mono, frame count
  off; ``+task.audio_check=edges`` also decodes the first and last block of each file, ``full``
  decodes every frame, which finds damage in the middle and non-finite samples), and lists
  every bad file in one error. Each read is checked again (corrupt data, early end, NaN/inf
  samples), so nothing reaches the model as a silent stereo average or a NaN loss: by default a
  file that fails to decode stops the run with its name and the reason; with
  ``+task.skip_bad_audio=true`` it is left out of its batch instead, named in a warning, and
  counted (``skipped_audio`` in the training log; the start-up check then warns instead of failing).
* **Bad configs fail before the model is built**, naming the key (curvature <= 0, groups not
  dividing the quantizer width, fewer than two codes), and ``common.fp16=true`` on a machine
  without CUDA says which fairseq option makes it run instead of dying in a CUDA call.
* **Restarts are exact and safe.** Random crops are drawn from ``(seed, epoch, batch)`` by a
  generator of their own (fairseq collates in a background thread, so the stock crops, drawn from
  numpy's global generator, race with the model's draws) and the model's numpy draws (time masks)
  from ``(seed, update)`` (``patches.seeded_numpy``), so a run resumed from
  ``checkpoint_last.pt`` repeats the uninterrupted run's batches and masks; checkpoint copies
  are atomic and a restart resumes from the newest complete checkpoint (``patches``).
* **Autocast works**: wav2vec 2.0's masking is made dtype-safe (``patches.make_masking_autocast_safe``).
* **Checkpoints name their plugin.** The config field ``requires_plugin`` is saved in every
  checkpoint; fairseq prints the task config when it cannot find the task, so a user without
  the plugin reads how to get it.

    fairseq-hydra-train --config-name hypervq_w2v2_tiny task.data=MANIFEST_DIR \\
        +task.audio_check=full
    fairseq-hydra-train --config-name hypervq_w2v2_tiny task.data=MANIFEST_DIR +task.skip_bad_audio=true
"""

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from fairseq.data import FileAudioDataset
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics
from fairseq.tasks import register_task
from fairseq.tasks.audio_pretraining import AudioPretrainingConfig, AudioPretrainingTask
from omegaconf import II

from ...data.audio import read_audio
from ...data.manifest import CHECK_MODES, check_manifest
from ...errors import AudioInputError, BadAudioFilesError, ConfigError
from ..config_checks import check_model_config, check_precision, check_training_numbers
from ..patches import make_masking_autocast_safe, seeded_numpy

logger = logging.getLogger(__name__)
SKIPPED_KEY = "skipped_audio"  # batch key and log key: files of the batch left out as unreadable

PLUGIN_NOTE = (
    "hypervq-fairseq: this checkpoint needs the HyperVQ plugin. Install it (pip install hypervq-fairseq, "
    "or pip install -e THE_CLONE), then in Python run 'import hypervq_fairseq' before loading, "
    "or pass common.user_dir=PATH_TO/hypervq_fairseq to fairseq's command-line tools."
)


@dataclass
class HyperVQAudioPretrainingConfig(AudioPretrainingConfig):
    audio_check: ChoiceEnum(list(CHECK_MODES)) = field(
        default="header",
        metadata={"help": "start-up check of every manifest file: header (exists, rate, channels, frame count), "
                          "edges (header + decode the first and last block), full (decode every frame), none"},
    )
    audio_check_workers: int = field(
        default=0, metadata={"help": "processes for audio_check=edges|full (0: all CPUs)"}
    )
    skip_bad_audio: bool = field(
        default=False,
        metadata={"help": "a file that cannot be read during training is left out of its batch, named in a "
                          "warning and counted (skipped_audio in the log) instead of stopping the run; the "
                          "start-up check then warns about bad files instead of failing"},
    )
    requires_plugin: str = field(
        default=PLUGIN_NOTE,
        metadata={"help": "saved in checkpoints so that fairseq's 'could not infer task' error says what to install"},
    )
    # read-only links to the precision switches, for the fp16-on-CPU check
    fp16: bool = II("common.fp16")
    fp16_no_flatten_grads: bool = II("common.fp16_no_flatten_grads")
    memory_efficient_fp16: bool = II("common.memory_efficient_fp16")
    # ... and to the values fairseq would accept silently: a negative or NaN learning rate (gradient
    # ascent), max_tokens 0 (fairseq reads it as "no limit" and makes one batch of everything)
    lr: Any = II("optimization.lr")
    max_tokens: Any = II("dataset.max_tokens")


def _linked(cfg, key: str):
    try:
        return getattr(cfg, key, None)
    except Exception:  # unresolvable interpolation (config built outside fairseq-hydra-train)
        return None


def _bool(cfg, key: str) -> bool:
    try:
        value = getattr(cfg, key, False)
    except Exception:  # unresolvable interpolation (config built outside fairseq-hydra-train)
        return False
    return value if isinstance(value, bool) else False


class CheckedFileAudioDataset(FileAudioDataset):
    """``FileAudioDataset`` whose reads fail by name and whose crops are reproducible.

    Made from a stock instance by :meth:`adopt` (the task builds the stock dataset, with all its
    options, and this class changes only ``__getitem__``, ``collater`` and ``set_epoch``).
    """

    @classmethod
    def adopt(cls, dataset: FileAudioDataset, seed: int, skip_bad: bool = False) -> "CheckedFileAudioDataset":
        dataset.__class__ = cls
        dataset.crop_seed = seed
        dataset.epoch = getattr(dataset, "epoch", 1) or 1
        dataset.skip_bad = skip_bad
        dataset.skipped = set()  # indices skipped in this process (each data-loader worker has its own)
        return dataset

    def path(self, index: int) -> str:
        fn = self.fnames[index]
        fn = fn if isinstance(self.fnames, list) else fn.as_py()
        return os.path.join(self.root_dir, self.text_compressor.decompress(fn))

    def __getitem__(self, index):
        try:
            return self._read(index)
        except AudioInputError as e:
            if not getattr(self, "skip_bad", False):
                raise
            if index not in self.skipped:                           # named once; counted in every batch
                self.skipped.add(index)
                logger.warning(f"skipping unreadable audio whenever it comes up (task.skip_bad_audio=true): {e} "
                               f"[{len(self.skipped)} file(s) skipped so far]")
            return {"id": index, "source": None}                    # the stock collater leaves it out

    def _read(self, index):
        path = self.path(index)
        if ":" in os.path.basename(path) or self.is_compute_mask:  # zip-stored audio or precomputed masks
            try:
                return super().__getitem__(index)
            except Exception as e:
                raise AudioInputError(f"{path}: cannot be read ({e})") from None
        wav = read_audio(path, expected_rate=self.sample_rate, expected_frames=int(self.sizes[index]))
        return {"id": index, "source": self.postprocess(torch.from_numpy(wav), self.sample_rate)}

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        self.epoch = epoch

    def collater(self, samples):
        # fairseq collates in a background thread (BufferedIterator) while the main thread trains,
        # so the crops must not touch numpy's global generator: each batch gets its own
        ids = sorted(int(s["id"]) for s in samples)
        self._crop_rng = np.random.default_rng([self.crop_seed, self.epoch, *ids[:8]])
        skipped = sum(1 for s in samples if s["source"] is None)
        batch = super().collater(samples)
        if batch and skipped:
            batch[SKIPPED_KEY] = skipped
        return batch

    def crop_to_max_size(self, t, target_size, dim=0):
        diff = t.size(dim) - target_size
        if diff <= 0:
            return t
        rng = getattr(self, "_crop_rng", None) or np.random.default_rng([self.crop_seed, self.epoch])
        start = int(rng.integers(0, diff + 1))
        return t.narrow(dim, start, target_size)


def _file_dataset(dataset):
    """The ``FileAudioDataset`` inside the stock task's dataset (maybe under SubsampleDataset)."""
    while dataset is not None and not isinstance(dataset, FileAudioDataset):
        dataset = getattr(dataset, "dataset", None)
    return dataset


@register_task("hypervq_audio_pretraining", dataclass=HyperVQAudioPretrainingConfig)
class HyperVQAudioPretrainingTask(AudioPretrainingTask):
    cfg: HyperVQAudioPretrainingConfig

    @classmethod
    def setup_task(cls, cfg: HyperVQAudioPretrainingConfig, **kwargs):
        if not kwargs.get("from_checkpoint", False):
            workers = getattr(cfg, "audio_check_workers", 0)
            if not isinstance(workers, int) or workers < 0:
                raise ConfigError(f"task.audio_check_workers={workers!r}: a number of processes >= 1, or 0 for all CPUs")
            check_precision(fp16=_bool(cfg, "fp16"), fp16_no_flatten_grads=_bool(cfg, "fp16_no_flatten_grads"),
                            memory_efficient_fp16=_bool(cfg, "memory_efficient_fp16"))
            check_training_numbers(_linked(cfg, "lr"), _linked(cfg, "max_tokens"))
        return cls(cfg)

    def load_dataset(self, split: str, task_cfg=None, **kwargs):
        task_cfg = task_cfg or self.cfg
        plain = not getattr(task_cfg, "binarized_dataset", False) and getattr(task_cfg, "multi_corpus_keys", None) is None
        skip = bool(getattr(self.cfg, "skip_bad_audio", False))
        if plain:
            try:
                check_manifest(os.path.join(self.cfg.data, f"{split}.tsv"), sample_rate=self.cfg.sample_rate,
                               mode=str(getattr(self.cfg, "audio_check", "header")),
                               workers=getattr(self.cfg, "audio_check_workers", 0) or None)
            except BadAudioFilesError as e:                                 # a broken manifest is never skipped
                if not skip:
                    raise
                listing = "\n".join(f"  {path}: {reason}" for path, reason in e.files)
                logger.warning(f"{len(e.files)} bad audio file(s) in {split}.tsv will be skipped when read "
                               f"(task.skip_bad_audio=true):\n{listing}")
        super().load_dataset(split, task_cfg, **kwargs)
        inner = _file_dataset(self.datasets[split])
        if inner is not None and type(inner) is FileAudioDataset:
            CheckedFileAudioDataset.adopt(inner, seed=int(getattr(self.cfg, "seed", 1) or 1), skip_bad=skip)

    def build_model(self, model_cfg, from_checkpoint=False):
        check_model_config(model_cfg)
        return make_masking_autocast_safe(super().build_model(model_cfg, from_checkpoint))

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        _log_skipped(sample)
        # the model's numpy draws (time masks, layer drop) follow (seed, update): exact on resume
        with seeded_numpy(int(getattr(self.cfg, "seed", 1) or 1), update_num):
            return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    def valid_step(self, sample, model, criterion):
        _log_skipped(sample)
        return super().valid_step(sample, model, criterion)


def _log_skipped(sample) -> None:
    """Count the files a batch left out as unreadable (``skipped_audio``, summed per log interval)."""
    skipped = sample.pop(SKIPPED_KEY, 0) if isinstance(sample, dict) else 0
    if skipped:
        metrics.log_scalar_sum(SKIPPED_KEY, skipped, round=0)
