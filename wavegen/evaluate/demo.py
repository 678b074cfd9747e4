"""`wavegen demo`: the shipped WaveNet plays a Bach chorale held out from training, beside its reference.

Writes into one folder the chorale as 88-key text (sketch.txt), its SoundFont rendering (reference.wav),
the WaveNet's performance of the same text (generated.wav, denoised by its notes as `wavegen generate`
denoises: synth/denoise.py) and both spectrograms side by side with the
notes drawn over them (demo.png). Without an installed model it shows the reference alone, and says so.
The work's modules are imported by `demo`: the command line reads DEMO_PIECE for its help without torch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DEMO_PIECE = "bwv244.37"  # a chorale of the held-out test split
REFERENCE_ONLY_RATE_HZ = 16_000  # the sample rate when no model is installed
FILES = ("sketch.txt", "reference.wav", "generated.wav", "demo.png")  # what it writes into its folder


@dataclass
class Demo:
    piece: str
    seconds: float  # the length of each clip
    files: list[tuple[Path, str]]  # (path, what it holds), in the order to list them
    model: str | None  # the WaveNet's folder name; None: no model installed, the reference only
    generation_seconds: float = 0.0
    wall_seconds: float = 0.0

    def summary(self) -> str:
        """What `wavegen demo` prints: the piece, how fast it was played, the files."""
        head = f"Bach chorale {self.piece}, {self.seconds:.1f} s"
        if self.model is not None:
            head = (f"Bach chorale {self.piece} (held out from training), {self.seconds:.1f} s: generated in "
                    f"{self.generation_seconds:.1f} s ({self.seconds / self.generation_seconds:.2f}x real time) "
                    f"by {self.model}")
        files = [f"  {path}  {what}" for path, what in self.files]
        return "\n".join([head, *files, f"done in {self.wall_seconds:.1f} s"])


def demo(out_dir: str | os.PathLike, *, piece: str = DEMO_PIECE, model: str | None = None,
         seconds: float | None = None, seed: int = 0, on_start: Callable[[int, int], None] | None = None,
         progress: Callable[[int], None] | None = None, warn: Callable[[str], None] = lambda message: None) -> Demo:
    """Play `piece` (a Bach chorale of music21's corpus) with `model` (a checkpoint path or shipped name;
    default the shipped one) for its first `seconds` (default all of it), with the model's own sampling.
    on_start(n_samples, sample rate) is called when the WaveNet starts, progress(samples done) as it plays
    (as `generate_takes` does), warn(message) before it starts. The folder and every file in it are checked
    before any work."""
    from wavegen.audio import write_audio
    from wavegen.data import build
    from wavegen.files import check_output, check_output_dir
    from wavegen.nn import checkpoint
    from wavegen.notes import plot
    from wavegen.notes import text as T
    from wavegen.notes.limits import check_duration
    from wavegen.notes.render import render_notes
    from wavegen.synth import denoise as denoising
    from wavegen.synth.generate import play

    t0 = time.perf_counter()
    if seconds is not None:
        check_duration(seconds, "--seconds")
    out = check_output_dir(out_dir)
    for name in FILES:
        check_output(out / name)
    kt = build.corpus_text("bach", piece)
    if model is None and checkpoint.DEFAULT_MODEL not in checkpoint.shipped_models():
        warn(f"no trained model is installed ({checkpoint.DEFAULT_MODEL}): showing the reference rendering only")
        loaded = None
    else:
        loaded = checkpoint.load(model)
    sr = loaded.sample_rate_hz if loaded else REFERENCE_ONLY_RATE_HZ
    T.write_file(out / "sketch.txt", kt)
    ref = render_notes(kt.notes(), sample_rate_hz=sr, min_seconds=kt.n_ticks * kt.tick_s).audio
    n = len(ref) if seconds is None else min(len(ref), int(seconds * sr))
    ref = ref[:n]
    write_audio(out / "reference.wav", ref, sr)
    notes = [T.Note(x.pitch, x.start, min(x.end, n / sr)) for x in kt.notes() if x.start < n / sr]
    panels = [(f"{piece}: reference rendering (SoundFont)", ref)]
    files = [(out / "sketch.txt", "the chorale as 88-key text"), (out / "reference.wav", "the SoundFont rendering")]
    result = Demo(piece, n / sr, files, None)
    if loaded is not None:
        t_gen = time.perf_counter()
        style = loaded.style_index(None, kt.meta.get("style"), warn)
        if on_start:
            on_start(n, sr)
        gen = play(loaded.model, n, sample_rate_hz=sr, sketch=kt, seed=seed, style=style, progress=progress,
                   **loaded.sampling())[0]
        if loaded.model.uses_notes:
            gen = denoising.denoise(gen, sr, kt.notes(), denoising.DEFAULT_DEPTH_DB, loaded.timbre_played())
        result.generation_seconds = time.perf_counter() - t_gen
        result.model = loaded.path.name
        write_audio(out / "generated.wav", gen, sr)
        panels.append((f"{piece}: generated sample by sample by {loaded.path.name}", gen))
        files.insert(0, (out / "generated.wav", "written by the WaveNet, sample by sample"))
    plot.plot_comparison(out / "demo.png", panels, sr, notes=notes)
    files.append((out / "demo.png", "spectrograms side by side, the notes drawn over them"))
    result.wall_seconds = time.perf_counter() - t0
    return result
