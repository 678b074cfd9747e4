"""`wavegen encode | decode | render | plot`: the 88-key text, MIDI, the SoundFont rendering, pictures."""

from __future__ import annotations

import sys
import time

from wavegen.cli.common import arg, command, dbfs, positive_float, positive_int, warn
from wavegen.errors import WavegenError

FOLD = arg("--fold-octaves", action="store_true", help="MIDI: move notes outside the 88 keys by octaves instead of dropping them")


@command("encode", "MIDI -> 88-key text", arg("input", metavar="IN.mid"),
         arg("-o", "--output", metavar="OUT.txt", help="write here (default: standard output)"),
         arg("--tick-ms", type=positive_float, default=50.0, help="tick length in ms (default 50)"), FOLD,
         arg("--style", help="a style tag for the header, e.g. bach"))
def encode(args) -> int:
    from wavegen.notes import text as T
    from wavegen.notes.midi import read_midi

    read = read_midi(args.input, fold_octaves=args.fold_octaves)
    warn(read.warnings)
    kt = T.from_notes(read.notes, args.tick_ms, meta={"style": args.style} if args.style else {})
    if not args.output:
        sys.stdout.write(T.write(kt))
        return 0
    T.write_file(args.output, kt)
    print(f"wrote {args.output}: {kt.n_ticks} ticks ({kt.n_ticks * kt.tick_s:.1f} s), {len(kt.notes())} notes")
    return 0


@command("decode", "88-key text -> MIDI", arg("input", metavar="IN.txt"),
         arg("-o", "--output", metavar="OUT.mid", required=True))
def decode(args) -> int:
    from wavegen.notes import text as T
    from wavegen.notes.midi import write_midi

    if not args.output.lower().endswith((".mid", ".midi")):
        raise WavegenError(f"{args.output}: the MIDI output must end in .mid or .midi")
    kt = T.read_file(args.input)
    write_midi(args.output, kt)
    print(f"wrote {args.output}: {len(kt.notes())} notes, {kt.duration_s:.1f} s")
    return 0


@command("render", "88-key text or MIDI -> harpsichord audio (SoundFont reference)", arg("input", metavar="IN.{mid,txt}"),
         arg("-o", "--output", metavar="OUT.wav", required=True, help=".wav or .flac, 16-bit mono"),
         arg("--sample-rate", type=positive_int, default=16_000, help="Hz (default 16000)"),
         arg("--soundfont", metavar="SF2", help="default: FluidR3_GM.sf2 if installed, else pretty_midi's TimGM6mb.sf2"), FOLD)
def render(args) -> int:
    from wavegen.notes.sketch import render_file

    t0 = time.perf_counter()
    sk, r = render_file(args.input, args.output, sample_rate_hz=args.sample_rate, soundfont=args.soundfont,
                        fold_octaves=args.fold_octaves)
    warn(sk.warnings + ([f"{args.output}: {r.clipped} samples clipped (peak {dbfs(r.peak)})"] if r.clipped else []))
    print(f"wrote {args.output}: {len(r.audio) / r.sample_rate_hz:.1f} s at {r.sample_rate_hz} Hz, "
          f"peak {dbfs(r.peak)}, {r.clipped} clipped samples, {time.perf_counter() - t0:.1f} s to render")
    return 0


@command("plot", "a picture of a text, MIDI or audio file", arg("input", metavar="IN.{mid,txt,wav}"),
         arg("-o", "--output", metavar="OUT.png", required=True),
         arg("--notes", metavar="NOTES.{txt,mid}", help="with audio: draw these notes over its spectrogram"))
def plot(args) -> int:
    from wavegen.notes.sketch import plot_file

    warn(plot_file(args.input, args.output, notes=args.notes))
    print(f"wrote {args.output}")
    return 0
