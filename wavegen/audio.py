"""Audio files and mu-law: the only module that reads or writes audio.

In memory audio is mono float32 in [-1, 1]; on disk it is 16-bit PCM WAV, or FLAC by extension.
Writing makes clipping explicit: samples beyond full scale are clipped and counted, never wrapped.
Three more forms: `GrowingWav` writes a WAV in chunks that is valid at every moment (for endless
playing), and a dataset keeps its audio as int16 .npy files (`write_pcm_npy`, `read_pcm_npy`), read
back through a memory map so that training crops read only what they touch.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from wavegen.errors import WavegenError
from wavegen.files import atomic_path, check_input

DEFAULT_SAMPLE_RATE_HZ = 16_000
MU_LAW_CLASSES = 256
_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16")}


@dataclass(frozen=True)
class WriteReport:
    path: Path
    n_samples: int
    clipped: int  # samples beyond full scale, clipped


def output_format(path: str | os.PathLike) -> tuple[str, str]:
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMATS:
        raise WavegenError(f"{path}: unknown audio extension {suffix!r}; use .wav or .flac")
    return _FORMATS[suffix]


def to_int16(audio: np.ndarray) -> tuple[np.ndarray, int]:
    """float audio in [-1, 1] -> int16 and the number of samples that had to be clipped."""
    audio = np.asarray(audio, dtype=np.float32)
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio holds NaN or infinite samples")
    scaled = np.round(audio * 32767.0)
    clipped = int(np.count_nonzero((scaled > 32767) | (scaled < -32768)))
    return np.clip(scaled, -32768, 32767).astype(np.int16), clipped


def from_int16(pcm: np.ndarray) -> np.ndarray:
    return (np.asarray(pcm, dtype=np.float32) / 32767.0).astype(np.float32)


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate_hz: int) -> WriteReport:
    """Write mono float audio as 16-bit WAV/FLAC, atomically. Clipping is counted in the report."""
    fmt, subtype = output_format(path)
    if np.asarray(audio).ndim != 1:
        raise ValueError(f"expected mono audio (n_samples,), got shape {np.asarray(audio).shape}")
    pcm, clipped = to_int16(audio)
    with atomic_path(path) as tmp:
        try:
            sf.write(tmp, pcm, int(sample_rate_hz), format=fmt, subtype=subtype)
        except sf.LibsndfileError as e:
            raise _system_error(e, path) from None
    return WriteReport(Path(path), len(pcm), clipped)


SF_ERR_SYSTEM = 2  # libsndfile's code for "the system refused": a full disk, say


def _system_error(e: sf.LibsndfileError, path: str | os.PathLike) -> Exception:
    """libsndfile reports a failed write as "System error" alone; the errno its C call left (which cffi
    keeps) says why, so a full disk becomes the OSError it is, naming `path`."""
    ffi = getattr(sf, "_ffi", None)
    code = ffi.errno if ffi is not None and e.code == SF_ERR_SYSTEM else 0
    if code:
        return OSError(code, os.strerror(code), str(path))
    return WavegenError(f"{path}: cannot write the audio ({str(e).strip() or type(e).__name__})")


def read_audio(path: str | os.PathLike, sample_rate_hz: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file as mono float32. With `sample_rate_hz`, resample to it (soxr, HQ)."""
    p = check_input(path)
    try:
        data, sr = sf.read(p, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise WavegenError(f"{p}: not a readable audio file ({str(e).strip() or type(e).__name__})") from None
    audio = data.mean(axis=1).astype(np.float32)
    if sample_rate_hz is not None and sr != sample_rate_hz:
        audio = resample(audio, sr, sample_rate_hz)
        sr = sample_rate_hz
    return audio, int(sr)


@dataclass(frozen=True)
class Recording:
    """A recording read by `read_recording`: mono float32 at the rate asked for, and what the file was."""

    audio: np.ndarray  # (n_samples,) float32, the mean of the file's channels
    sample_rate_hz: int
    source_rate_hz: int
    channels: int
    source_seconds: float  # the file's length at its own rate


def read_recording(path: str | os.PathLike, sample_rate_hz: int, *, block_frames: int = 1 << 18) -> Recording:
    """Any audio file libsndfile reads (WAV, FLAC, OGG, MP3, AIFF, ...) as mono float32 at `sample_rate_hz`:
    the mean of its channels, resampled by soxr (HQ) block by block, so that memory holds the output and
    one block, not the whole file at its own rate (a MAESTRO piece is up to half an hour of 48 kHz stereo).

    A file that does not decode, holds no samples, or whose WAV data chunk is shorter than its header says
    (libsndfile reads such a file quietly, shortened; its log says "should be") is a WavegenError naming it.
    """
    import soxr

    p = check_input(path)
    chunks: list[np.ndarray] = []
    try:
        with sf.SoundFile(p) as f:
            sr, channels = int(f.samplerate), int(f.channels)
            short = re.search(r"^data\s*:\s*(\d+) \(should be (\d+)\)", f.extra_info, re.MULTILINE)
            if short:
                raise WavegenError(f"{p}: truncated: its header promises {int(short[1])} bytes of audio, the file "
                                   f"holds {int(short[2])}; copy the file again")
            stream = None if sr == sample_rate_hz else soxr.ResampleStream(sr, sample_rate_hz, 1, dtype="float32",
                                                                            quality="HQ")
            frames = 0
            for block in f.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
                frames += len(block)
                mono = block.mean(axis=1, dtype=np.float32)
                chunks.append(mono if stream is None else stream.resample_chunk(mono))
            if stream is not None:
                chunks.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise WavegenError(f"{p}: not a readable audio file ({str(e).strip() or type(e).__name__}); "
                           "it may be truncated or of a format libsndfile does not read") from None
    if not frames:
        raise WavegenError(f"{p}: holds no audio samples")
    audio = np.concatenate(chunks).astype(np.float32, copy=False)
    if not np.all(np.isfinite(audio)):
        raise WavegenError(f"{p}: holds NaN or infinite samples")
    return Recording(audio, int(sample_rate_hz), sr, channels, frames / sr)


def write_pcm_npy(path: str | os.PathLike, pcm: np.ndarray) -> None:
    """Write int16 mono audio (from `to_int16`) as a .npy file, atomically."""
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(f"expected int16 mono audio (n_samples,), got {pcm.dtype} {pcm.shape}")
    with atomic_path(path) as tmp:
        np.save(tmp, pcm)


def read_pcm_npy(path: str | os.PathLike, n_samples: int | None = None) -> np.ndarray:
    """The int16 audio of a .npy file written by `write_pcm_npy`, memory-mapped (read-only).

    A file that is truncated, not int16 mono, or (given `n_samples`) not exactly that many samples long is
    a WavegenError naming it, before anything reads past its end.
    """
    try:
        pcm = np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WavegenError(f"{path}: not a complete int16 audio array ({detail})") from None
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
        raise WavegenError(f"{path}: not int16 mono audio")
    if n_samples is not None and len(pcm) != n_samples:
        raise WavegenError(f"{path}: holds {len(pcm)} samples, not the {n_samples} recorded for it")
    return pcm


class GrowingWav:
    """Mono 16-bit PCM WAV written in chunks; the header is rewritten after each chunk (to a file) so the
    file is always valid, however the process ends. To a pipe ('-' = standard output) the sizes are
    left at their maximum."""

    def __init__(self, path: str, sample_rate_hz: int):
        self.sr, self.path = sample_rate_hz, path
        self.pipe = path == "-"
        self.f: BinaryIO = sys.stdout.buffer if self.pipe else open(Path(path), "wb")  # noqa: SIM115
        self.frames = 0
        self.clipped = 0
        with self._naming_the_file():
            self._header(0xFFFFFFFF - 36 if self.pipe else 0)

    def _header(self, data_bytes: int) -> None:
        self.f.write(b"RIFF" + struct.pack("<I", min(36 + data_bytes, 0xFFFFFFFF)) + b"WAVE")
        self.f.write(b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, self.sr, self.sr * 2, 2, 16))
        self.f.write(b"data" + struct.pack("<I", data_bytes))

    def write(self, audio: np.ndarray) -> None:
        pcm, clipped = to_int16(audio)
        self.clipped += clipped
        with self._naming_the_file():
            self.f.write(pcm.astype("<i2").tobytes())
            self.frames += len(pcm)
            if not self.pipe:
                end = self.f.tell()
                self.f.seek(0)
                self._header(self.frames * 2)
                self.f.seek(end)
            self.f.flush()

    def close(self) -> None:
        with self._naming_the_file():
            if not self.pipe:
                self.f.close()
            else:
                self.f.flush()

    @contextlib.contextmanager
    def _naming_the_file(self) -> Iterator[None]:
        """A failed write (a full disk, a closed pipe) names no file: name this one ('-': standard output)."""
        try:
            yield
        except OSError as e:
            if e.filename or e.errno is None:
                raise
            raise OSError(e.errno, e.strerror, self.path) from e


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Band-limited resampling with soxr (the resampler librosa uses), high quality."""
    import soxr

    if from_hz == to_hz:
        return np.asarray(audio, dtype=np.float32)
    return soxr.resample(np.asarray(audio, dtype=np.float32), from_hz, to_hz, quality="HQ").astype(np.float32)


def mu_law_encode(audio: np.ndarray, n_classes: int = MU_LAW_CLASSES) -> np.ndarray:
    """float audio in [-1, 1] -> int64 codes 0..n_classes-1 (computed in float64)."""
    mu = n_classes - 1
    x = np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    return np.floor((y + 1) / 2 * mu + 0.5).astype(np.int64)


def mu_law_decode(codes: np.ndarray, n_classes: int = MU_LAW_CLASSES) -> np.ndarray:
    """int codes 0..n_classes-1 -> float32 audio in [-1, 1]; the inverse of `mu_law_encode`."""
    mu = n_classes - 1
    y = 2 * np.asarray(codes, dtype=np.float64) / mu - 1
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu).astype(np.float32)


# Pre-emphasis (model.pre_emphasis = a > 0, mu-law output only): the network predicts
# e[n] = (x[n] - a x[n-1]) / (1 + a), which stays in [-1, 1] for x in [-1, 1]; playback inverts it,
# x[n] = (1 + a) e[n] + a x[n-1]. What sampling adds to e (quantization and the model's uncertainty,
# nearly white) comes out shaped like the music, loud in the bass where the notes cover it and quiet in
# the treble where it would hiss: the noise shaping of FFTNet and LPCNet.

def emphasize(audio: np.ndarray, a: float, before: float = 0.0) -> np.ndarray:
    """(x[n] - a x[n-1]) / (1 + a) along the last axis; `before` is x[-1]. float64."""
    x = np.asarray(audio, dtype=np.float64)
    prev = np.concatenate([np.full(x.shape[:-1] + (1,), before), x[..., :-1]], axis=-1)
    return (x - a * prev) / (1 + a)


def deemphasize(e: np.ndarray, a: float, before: np.ndarray | float = 0.0) -> np.ndarray:
    """The inverse of `emphasize` along the last axis; `before` is x[-1] (per row). float32."""
    from scipy.signal import lfilter

    e = np.asarray(e, dtype=np.float64)
    zi = np.broadcast_to(np.asarray(before, dtype=np.float64) * a, e.shape[:-1])[..., None]
    return lfilter([1 + a], [1, -a], e, axis=-1, zi=zi)[0].astype(np.float32)
