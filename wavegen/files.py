"""Atomic file writes: a crash or an error never leaves a half-written output behind; outputs are checked
before the work that makes them (`check_output`), and a full disk names the file and its file system.

What is written aside and renamed into place gets the permissions a plain write would have given
(`usual_permissions`: the one place that reads the umask).
"""

from __future__ import annotations

import contextlib
import errno
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
    problem = _cannot_write_in(d)
    if problem:
        raise WavegenError(f"{d}: the output folder cannot be written ({problem})")
    return d


def _cannot_write_in(folder: Path) -> str | None:
    """Why no file can be created in `folder`, or None. Tried by creating and deleting one: os.access says
    yes to root everywhere, and knows nothing of read-only or special file systems."""
    try:
        fd, name = tempfile.mkstemp(prefix=".wavegen-probe-", dir=folder)
    except OSError as e:
        return (e.strerror or str(e)).lower()
    os.close(fd)
    os.unlink(name)
    return None


def check_output(path: str | os.PathLike) -> Path:
    """Before any work: `path` can be written as a file, else a one-line WavegenError naming it. It must
    not be a folder, and the nearest folder above it that exists must be a folder a file can be created in
    (missing folders between are created when it is written). Every command checks its outputs with this
    before it generates, renders or reads anything."""
    p = Path(path)
    if p.is_dir():
        raise WavegenError(f"{p}: is a folder; give the name of a file to write")
    above = p.parent
    while not os.path.lexists(above) and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise WavegenError(f"{p}: cannot be written: {above} is not a folder")
    problem = _cannot_write_in(above)
    if problem:
        raise WavegenError(f"{p}: cannot be written in {above} ({problem})")
    return p


def mount_point(path: str | os.PathLike) -> Path:
    """The mount point of the file system that holds `path` (or would, for a path not yet made)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    dev = p.stat().st_dev
    while p != p.parent and p.parent.stat().st_dev == dev:
        p = p.parent
    return p


def os_error_line(e: OSError) -> str | None:
    """The user's one line for a file the system would not read or write, or for a full disk (naming the
    file and the file system it is on); None when the error names no file and is no full disk (a bug)."""
    if e.errno == errno.ENOSPC:
        if not e.filename or e.filename == "-":
            return "no space left on the device (standard output)" if e.filename else "no space left on the device"
        return f"no space left on {mount_point(e.filename)} (writing {e.filename}); free some space and run it again"
    if not e.filename:
        return None
    return f"{e.filename}: {e.strerror or e}"


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
    if target.is_dir() or not target.parent.is_dir():
        check_output(target)  # one line naming `path`: a folder, or a file or a locked folder on the way
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent
        )
    except OSError as e:
        raise WavegenError(f"{target}: cannot be written in {target.parent} "
                           f"({(e.strerror or str(e)).lower()})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    usual_permissions(tmp)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as e:  # a full disk, say: name the file the user asked for, not the temporary one
        tmp.unlink(missing_ok=True)
        if e.errno is None or e.filename not in (None, str(tmp)):
            raise
        raise OSError(e.errno, e.strerror, str(target)) from e
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
