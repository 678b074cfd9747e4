"""The limits of what wavegen reads, encodes and renders, in one home (the README lists them).

They bound the memory and time a request can take, so that a corrupt or hostile file, or a mistyped
option, is refused up front with one line instead of exhausting the machine. MIDI files (notes/midi.py)
and 88-key texts (notes/text.py) share the music limits; the tick and the sample rate are checked where
the library takes them (`from_notes`, the text header, `render_notes`); the length of a request
(`check_duration`, `check_ticks`) and the takes of `generate` (`check_takes`) where it is made
(synth/takes.py, compose/piece.py, evaluate/).
"""

from __future__ import annotations

import math

from wavegen.errors import WavegenError

MAX_SECONDS = 2 * 3600.0  # of music in one file or request
MAX_NOTES = 200_000  # notes in one file
MAX_FILE_BYTES = 32 * 1024 * 1024  # size of one MIDI or text file
MIN_TICK_MS = 1.0
MAX_TICK_MS = 1000.0
MIN_SAMPLE_RATE_HZ = 1_000
MAX_SAMPLE_RATE_HZ = 192_000
MAX_TAKES = 256  # takes of one `generate --batch`
MAX_TAKE_SAMPLES = 2**28  # samples of all takes of one request together: 1 GiB as float32 (4.6 h at 16 kHz)


def tick_ms_problem(tick_ms: float) -> str | None:
    """Why `tick_ms` is outside the limits (for the caller's message), or None if it is within them."""
    if not (math.isfinite(tick_ms) and MIN_TICK_MS <= tick_ms <= MAX_TICK_MS):
        return f"is outside {MIN_TICK_MS:g}..{MAX_TICK_MS:g} ms, the tick lengths wavegen handles"
    return None


def check_tick_ms(tick_ms: float, option: str = "tick_ms") -> float:
    """`tick_ms`, or a WavegenError naming `option` when it is outside MIN_TICK_MS..MAX_TICK_MS."""
    problem = tick_ms_problem(tick_ms)
    if problem:
        raise WavegenError(f"{option} {tick_ms:g} {problem}; choose a tick in that range")
    return float(tick_ms)


def max_ticks(tick_ms: float) -> int:
    """The most ticks of `tick_ms` that fit in MAX_SECONDS."""
    return int(MAX_SECONDS * 1000.0 // tick_ms)


def check_seconds(seconds: float, what: str) -> None:
    """A WavegenError naming `what` when `seconds` of music exceed MAX_SECONDS."""
    if not seconds <= MAX_SECONDS:
        raise WavegenError(
            f"{what}: {seconds:.0f} s is longer than the {MAX_SECONDS:.0f} s ({MAX_SECONDS / 3600:g} h) "
            "wavegen handles; split it into shorter pieces"
        )


def check_duration(seconds: float, option: str = "--seconds") -> float:
    """A requested length in seconds (`generate`, `compose`, `evaluate`): finite, positive and at most
    MAX_SECONDS, else a WavegenError naming `option` and the limit."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise WavegenError(f"{option} {seconds:g}: the duration must be a finite number of seconds above 0")
    check_seconds(seconds, option)
    return float(seconds)


def check_ticks(ticks: int, tick_ms: float, option: str = "--ticks") -> int:
    """A requested length in ticks: positive and at most MAX_SECONDS of `tick_ms` ticks."""
    if not 0 < ticks <= max_ticks(tick_ms):
        raise WavegenError(f"{option} {ticks}: must be 1 to {max_ticks(tick_ms):,} ticks of {tick_ms:g} ms "
                           f"(at most {MAX_SECONDS:.0f} s, {MAX_SECONDS / 3600:g} h)")
    return int(ticks)


def check_takes(batch: int, n_samples: int | None = None, sample_rate_hz: int | None = None) -> int:
    """`batch` takes (of `n_samples` each, once known): at most MAX_TAKES, and at most MAX_TAKE_SAMPLES
    samples in all, the audio they hold in memory at once."""
    if not 0 < batch <= MAX_TAKES:
        raise WavegenError(f"--batch {batch}: wavegen makes 1 to {MAX_TAKES} takes at once; run it again "
                           "with another --seed for more")
    if n_samples is not None and batch * n_samples > MAX_TAKE_SAMPLES:
        length = f" ({n_samples / sample_rate_hz:.1f} s each)" if sample_rate_hz else ""
        raise WavegenError(f"--batch {batch}: {batch} takes of {n_samples:,} samples{length} are "
                           f"{batch * n_samples:,} samples, more than the {MAX_TAKE_SAMPLES:,} (1 GiB of audio) one "
                           "request may hold; ask for fewer or shorter takes")
    return int(batch)


def check_sample_rate(sample_rate_hz: float, option: str = "sample rate") -> int:
    """`sample_rate_hz` as an int, or a WavegenError naming `option` when it is outside the limits."""
    if not (float(sample_rate_hz).is_integer() and MIN_SAMPLE_RATE_HZ <= sample_rate_hz <= MAX_SAMPLE_RATE_HZ):
        raise WavegenError(
            f"{option} {sample_rate_hz:g} Hz is outside {MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ} Hz "
            "(whole numbers), the rates wavegen renders"
        )
    return int(sample_rate_hz)
