"""Atomic file writes: a crash or an error never leaves a half-written output behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from wavegen.errors import WavegenError


def check_input(path: str | os.PathLike) -> Path:
    """Return `path` as a Path if it is a readable file, else raise a one-line WavegenError."""
    p = Path(path)
    if not p.exists():
        raise WavegenError(f"{p}: no such file")
    if p.is_dir():
        raise WavegenError(f"{p}: is a folder, expected a file")
    if not os.access(p, os.R_OK):
        raise WavegenError(f"{p}: cannot be read (permission denied)")
    return p


def check_output_dir(folder: str | os.PathLike) -> Path:
    """Create `folder` if needed and check that it can be written to."""
    d = Path(folder)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WavegenError(f"{d}: cannot create the output folder ({e.strerror or e})") from None
    if not d.is_dir():
        raise WavegenError(f"{d}: exists and is not a folder")
    if not os.access(d, os.W_OK | os.X_OK):
        raise WavegenError(f"{d}: the output folder cannot be written (permission denied)")
    return d


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, on error delete it.

    The temporary name keeps the suffix of `path`, so libraries that choose a format by extension
    (soundfile, matplotlib) still do the right thing.
    """
    target = Path(path)
    check_output_dir(target.parent if str(target.parent) else ".")
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent
        )
    except OSError as e:
        raise WavegenError(f"{target}: cannot write here ({e.strerror or e})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
