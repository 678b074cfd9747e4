"""Atomic file writes: a crash or an error never leaves a half-written output behind.

What is written aside and renamed into place gets the permissions a plain write would have given
(`usual_permissions`: the one place that reads the umask).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    """The process's umask (it can only be read by setting it, so it is set back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def usual_permissions(path: str | os.PathLike) -> None:
    """Give a file 0o666 and a folder 0o777, less the umask: what open() and mkdir() give. mkstemp and
    mkdtemp make 0600 and 0700, so whatever is written aside and renamed into place needs this."""
    p = Path(path)
    os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~_umask())


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
    usual_permissions(tmp)
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


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def json_text(obj: Any, indent: int | None = None) -> str:
    """Strict JSON (what every reader accepts): a NaN or an infinity, which json.dumps would write as the
    non-JSON NaN or Infinity, is written as null."""
    return json.dumps(_finite(obj), indent=indent, allow_nan=False)
