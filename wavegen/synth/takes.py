"""`wavegen generate`: takes of a trained WaveNet, free-running or following a sketch, written as audio.

How long to play (the sketch plus the renderer's release tail, unless `seconds` says), which style (the
one asked for, else the sketch header's when the model knows it), how to sample (the model's own
temperature and min-p unless given), the velocities (a MIDI sketch's own, read with its sustain pedal, for
a model that reads them; 88-key text plays at the model's default velocity) and which engine (`play`
chooses) are decided here; the command line only parses and prints. `batch` takes are written OUT-1.wav,
OUT-2.wav, ... beside OUT.wav. A take that followed a sketch is denoised by its notes (synth/denoise.py;
`denoise` dB, default DEFAULT_DEPTH_DB, 0 = as played). The
length, the number of takes (notes/limits.py) and every output path are checked before the model is
loaded, the memory of all takes together before they are played.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wavegen.audio import output_format, write_audio
from wavegen.errors import WavegenError
from wavegen.files import check_output
from wavegen.nn import checkpoint
from wavegen.notes import limits
from wavegen.notes import sketch as sketches
from wavegen.notes import text as T
from wavegen.synth import denoise as denoising
from wavegen.synth.generate import choose_engine, play
from wavegen.synth.sketchcond import sketch_samples


@dataclass
class Takes:
    paths: list[Path]
    n_samples: int  # per take
    sample_rate_hz: int
    wall_seconds: float

    @property
    def samples_per_second(self) -> float:
        return self.n_samples * len(self.paths) / max(self.wall_seconds, 1e-9)

    def summary(self) -> str:
        """What `wavegen generate` prints: each take written, then the speed."""
        sr, n, rate = self.sample_rate_hz, self.n_samples, self.samples_per_second
        return "\n".join([*(f"wrote {path}: {n / sr:.1f} s at {sr} Hz" for path in self.paths),
                          f"{n * len(self.paths)} samples in {self.wall_seconds:.1f} s: {rate:,.0f} samples/s, "
                          f"{rate / sr:.3f}x real time"])


def take_paths(output: str | os.PathLike, batch: int) -> list[Path]:
    out = Path(output)
    return [out] if batch == 1 else [out.with_name(f"{out.stem}-{i + 1}{out.suffix}") for i in range(batch)]


def sketch_velocity(sk: sketches.Sketch) -> np.ndarray | None:
    """(ticks, 88) uint8: the velocity of the MIDI note sounding at each tick and key of the sketch's text,
    0 where none sounds (as a dataset's velocity file holds them); None for 88-key text, whose notes play at
    the model's default velocity."""
    if sk.velocities is None:
        return None
    kt = sk.keytext
    return T.velocity_roll(kt.roll, sk.notes, sk.velocities, kt.tick_ms)


def generate_takes(output: str | os.PathLike, *, model: str | None = None, sketch: str | None = None,
                   seconds: float | None = None, batch: int = 1, style: str | None = None, timbre: str | None = None,
                   temperature: float | None = None, min_p: float | None = None, seed: int = 0,
                   engine: str = "auto", threads: int | None = None, plot: bool = False,
                   denoise: float | None = None, warn: Callable[[str], None] = lambda message: None,
                   on_start: Callable[[int, int], None] | None = None,
                   progress: Callable[[int], None] | None = None) -> Takes:
    """Generate `batch` takes with `model` (a shipped model's name, a checkpoint or run folder; default
    the shipped one) and write them. on_start(n_samples per take, sample rate) is called once the length
    is known, progress(samples done per take) as they are made, warn(message) before the work."""
    output_format(output)
    if denoise is not None:
        denoising.check_depth(denoise)
    if seconds is not None:
        limits.check_duration(seconds, "--seconds")
    limits.check_takes(batch)
    for path in take_paths(output, batch):
        check_output(path)
        if plot:
            check_output(path.with_suffix(".png"))
    loaded = checkpoint.load(model)
    sampling = loaded.sampling(temperature, min_p)
    sr = loaded.sample_rate_hz
    sk = velocity = None
    if sketch:
        # a model with velocities learned from performances: a MIDI sketch is read as its data was, the
        # velocities kept and the notes the sustain pedal holds held
        sk = sketches.load(sketch, tick_ms=loaded.tick_ms, sustain_pedal=loaded.model.uses_velocity)
        for w in sk.warnings:
            warn(w)
        loaded.check_ticks(sk.keytext.tick_ms, str(sketch))
        velocity = sketch_velocity(sk)
    if seconds is not None:
        n = int(round(seconds * sr))
    elif sk is not None:
        n = sketch_samples(sk.keytext, sr)
    else:
        raise WavegenError("give --seconds (how long to play) or --sketch (what to play)")
    limits.check_takes(batch, n, sr)
    style_id = loaded.style_index(style, sk.keytext.meta.get("style") if sk else None, warn)
    timbre_id = loaded.timbre_index(timbre)
    if sk is None and loaded.model.uses_notes:
        warn("this model follows notes: without --sketch it plays an empty sketch (near silence)")
    engine, notice = choose_engine(loaded.model, engine)
    if notice:
        warn(notice)
    depth = denoising.DEFAULT_DEPTH_DB if denoise is None else denoise
    if sk is None or not loaded.model.uses_notes:
        if denoise:
            warn(f"--denoise {denoise:g}: nothing to denoise by (" + ("no --sketch" if sk is None else
                 "this model does not follow notes") + "); the takes are written as played")
        depth = 0.0
    if on_start:
        on_start(n, sr)
    t0 = time.perf_counter()
    audio = play(loaded.model, n, sample_rate_hz=sr, sketch=sk.keytext if sk else None, engine=engine,
                 batch=batch, threads=threads, **sampling, seed=seed, style=style_id, progress=progress,
                 velocity=velocity, timbre=timbre_id)
    took = time.perf_counter() - t0  # the network's time: what the speed printed is of
    if depth:
        audio = denoising.denoise(audio, sr, sk.keytext.notes(), depth, loaded.timbre_played(timbre))
    paths = take_paths(output, batch)
    for path, take in zip(paths, audio, strict=True):
        if not np.all(np.isfinite(take)):
            raise RuntimeError("generated audio is not finite")
        write_audio(path, take, sr)
        if plot:
            from wavegen.notes import plot as plots

            plots.plot_audio(path.with_suffix(".png"), take, sr, notes=sk.notes if sk else None,
                             title=f"{path.name}: generated by {loaded.path.name}")
    return Takes(paths, n, sr, took)
