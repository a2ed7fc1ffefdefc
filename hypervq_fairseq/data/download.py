"""Resumable, checksum-verified LibriSpeech download (for users with a network).

Why our own: the 960 h are three tarballs of 6, 23 and 30 GB; a dropped connection must not
restart a 30 GB transfer, a corrupt archive must not be unpacked, and a subset already on disk
must not be fetched again. Standard library only (``urllib``):

- **resume**: bytes go to ``NAME.part``; a new attempt asks for ``Range: bytes=N-`` and appends
  when the server answers 206 (a 200 means it ignored the range: start over).
- **verify**: SHA-256 of the whole archive against a table (LibriSpeech's values, as published
  with torchaudio's dataset loader); on mismatch the archive is deleted and an error names the
  URL, the expected and the actual digest.
- **skip**: a subset counts as present when ``ROOT/LibriSpeech/SUBSET`` exists; extraction goes
  to a temporary folder first and the subset folder is moved into place last, so a present
  folder is a complete one.

    python -m hypervq_fairseq.data.download /data --subsets dev-clean dev-other
    python -m hypervq_fairseq.data.download /data --all-960h
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import HyperVQError, InputError

LIBRISPEECH_URL = "https://www.openslr.org/resources/12"
LIBRISPEECH_SHA256 = {
    "dev-clean": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
    "train-clean-360": "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf",
    "train-other-500": "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2",
}
SUBSETS_960H = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other")
_CHUNK = 1 << 20


class DownloadError(HyperVQError, RuntimeError):
    """A download that cannot complete: bad server answer, wrong archive content."""


class ChecksumError(DownloadError):
    """The downloaded file's SHA-256 is not the expected one."""


def sha256_file(path, chunk: int = _CHUNK) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _fetch_once(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One attempt: continue ``part`` from its current size; raises on a dropped connection."""
    from tqdm import tqdm

    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: the part file is already whole
            return
        raise
    with response:
        if offset and response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                raise DownloadError(f"{url}: asked for bytes from {offset}, server sent range {content_range!r}")
            mode = "ab"
        else:  # 200: the server ignored the range (or there was none); start from zero
            offset, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with open(part, mode) as f, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                          desc=part.name[: -len(".part")], disable=not progress) as bar:
            got = offset
            while block := response.read(_CHUNK):
                f.write(block)
                got += len(block)
                bar.update(len(block))
        if total is not None and got < total:
            raise ConnectionError(f"connection closed after {got} of {total} bytes")


def download_file(url: str, dest, *, sha256: str | None = None, retries: int = 5, timeout: float = 60.0,
                  progress: bool = True) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` across attempts and runs; verify SHA-256.

    An existing ``dest`` whose digest matches is kept as is. Raises :class:`ChecksumError` (and
    deletes the bad bytes) on a digest mismatch, or the last network error after ``retries`` retries.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if sha256 is None or sha256_file(dest) == sha256:
            return dest
        dest.unlink()  # a stale or corrupt archive: fetch it again
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, timeout, progress)
            break
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as e:
            if isinstance(e, urllib.error.HTTPError) and e.code < 500:
                raise
            if attempt == retries:
                raise
            have = part.stat().st_size if part.exists() else 0
            print(f"download of {url} interrupted at {have} bytes ({e}); resuming", file=sys.stderr)
            time.sleep(min(2 ** attempt, 30))
    if sha256 is not None:
        actual = sha256_file(part)
        if actual != sha256:
            part.unlink()
            raise ChecksumError(f"{url}: SHA-256 {actual} does not match the expected {sha256}; the download was "
                                f"deleted, run again to fetch it anew")
    os.replace(part, dest)
    return dest


def _extract_subset(archive: Path, root: Path, subset: str) -> Path:
    """Unpack ``archive`` (LibriSpeech/SUBSET/...) and move the subset folder into ``root/LibriSpeech``."""
    target = root / "LibriSpeech" / subset
    with tempfile.TemporaryDirectory(dir=root, prefix=f".extract-{subset}-") as tmp:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:  # pragma: no cover - Python without extraction filters
                tar.extractall(tmp)
        unpacked = Path(tmp) / "LibriSpeech" / subset
        if not unpacked.is_dir():
            raise DownloadError(f"{archive} does not hold LibriSpeech/{subset}/")
        target.parent.mkdir(parents=True, exist_ok=True)
        for extra in (Path(tmp) / "LibriSpeech").iterdir():  # README, SPEAKERS.TXT, ... once
            if extra.is_file() and not (target.parent / extra.name).exists():
                shutil.copy2(extra, target.parent / extra.name)
        os.replace(unpacked, target)
    return target


def fetch_librispeech(root, subsets=SUBSETS_960H, *, base_url: str = LIBRISPEECH_URL, checksums=None,
                      keep_archives: bool = False, retries: int = 5, progress: bool = True) -> dict:
    """Download and unpack LibriSpeech ``subsets`` under ``root/LibriSpeech``; skip present ones.

    Returns {subset: "present" | "downloaded"}.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    checksums = LIBRISPEECH_SHA256 if checksums is None else checksums
    status = {}
    for subset in subsets:
        if (root / "LibriSpeech" / subset).is_dir():
            status[subset] = "present"
            continue
        if subset not in checksums:
            raise InputError(f"no checksum known for subset {subset!r}; known: {', '.join(sorted(checksums))}")
        archive = download_file(f"{base_url.rstrip('/')}/{subset}.tar.gz", root / f"{subset}.tar.gz",
                                sha256=checksums[subset], retries=retries, progress=progress)
        _extract_subset(archive, root, subset)
        if not keep_archives:
            archive.unlink()
        status[subset] = "downloaded"
    return status
