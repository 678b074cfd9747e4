"""`wavegen encode | decode | render | plot`: the 88-key text, MIDI, the SoundFont rendering, pictures."""

from __future__ import annotations

from wavegen.cli.common import arg, command, positive_float, positive_int, warn

FOLD = arg("--fold-octaves", action="store_true", help="MIDI: move notes outside the 88 keys by octaves instead of dropping them")


@command("encode", "MIDI -> 88-key text", arg("input", metavar="IN.mid"),
         arg("-o", "--output", metavar="OUT.txt", help="write here (default: standard output)"),
         arg("--tick-ms", type=positive_float, default=50.0, help="tick length in ms (default 50)"), FOLD,
         arg("--style", help="a style tag for the header, e.g. bach"))
def encode(args) -> int:
    from wavegen.notes.sketch import encode as run

    print(run(args.input, args.output, tick_ms=args.tick_ms, fold_octaves=args.fold_octaves, style=args.style,
              warn=warn).summary(), end="" if not args.output else "\n")
    return 0


@command("decode", "88-key text -> MIDI", arg("input", metavar="IN.txt"),
         arg("-o", "--output", metavar="OUT.mid", required=True))
def decode(args) -> int:
    from wavegen.notes.sketch import decode as run

    print(run(args.input, args.output).summary())
    return 0


@command("render", "88-key text or MIDI -> harpsichord audio (SoundFont reference)", arg("input", metavar="IN.{mid,txt}"),
         arg("-o", "--output", metavar="OUT.wav", required=True, help=".wav or .flac, 16-bit mono"),
         arg("--sample-rate", type=positive_int, default=16_000, help="Hz (default 16000)"),
         arg("--soundfont", metavar="SF2", help="default: FluidR3_GM.sf2 if installed, else pretty_midi's TimGM6mb.sf2"), FOLD)
def render(args) -> int:
    from wavegen.notes.sketch import render_file

    print(render_file(args.input, args.output, sample_rate_hz=args.sample_rate, soundfont=args.soundfont,
                      fold_octaves=args.fold_octaves, warn=warn).summary())
    return 0


@command("plot", "a picture of a text, MIDI or audio file", arg("input", metavar="IN.{mid,txt,wav}"),
         arg("-o", "--output", metavar="OUT.png", required=True),
         arg("--notes", metavar="NOTES.{txt,mid}", help="with audio: draw these notes over its spectrogram"))
def plot(args) -> int:
    from wavegen.notes.sketch import plot_file

    print(plot_file(args.input, args.output, notes=args.notes, warn=warn).summary())
    return 0
