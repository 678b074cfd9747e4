"""`wavegen encode | decode | render | plot`: the 88-key text, MIDI, the SoundFont rendering, pictures."""

from wavegen.cli.common import arg, command, positive_float, positive_int

FOLD = arg("--fold-octaves", action="store_true", help="MIDI: move notes outside the 88 keys by octaves instead of "
           "dropping them")

command("encode", "MIDI -> 88-key text", arg("path", metavar="IN.mid"),
        arg("-o", "--output", metavar="OUT.txt", help="write here (default: standard output)"),
        arg("--tick-ms", type=positive_float, default=50.0, help="tick length in ms (default 50)"), FOLD,
        arg("--style", help="a style tag for the header, e.g. bach"), call="wavegen.notes.sketch:encode")
command("decode", "88-key text -> MIDI", arg("path", metavar="IN.txt"),
        arg("-o", "--output", metavar="OUT.mid", required=True), call="wavegen.notes.sketch:decode")
command("render", "88-key text or MIDI -> harpsichord audio (SoundFont reference)", arg("path", metavar="IN.{mid,txt}"),
        arg("-o", "--output", metavar="OUT.wav", required=True, help=".wav or .flac, 16-bit mono"),
        arg("--sample-rate", dest="sample_rate_hz", metavar="SAMPLE_RATE", type=positive_int, default=16_000,
            help="Hz (default 16000)"),
        arg("--soundfont", metavar="SF2", help="default: FluidR3_GM.sf2 if installed, else pretty_midi's TimGM6mb.sf2"),
        FOLD, call="wavegen.notes.sketch:render_file")
command("plot", "a picture of a text, MIDI or audio file", arg("path", metavar="IN.{mid,txt,wav}"),
        arg("-o", "--output", metavar="OUT.png", required=True),
        arg("--notes", metavar="NOTES.{txt,mid}", help="with audio: draw these notes over its spectrogram"),
        call="wavegen.notes.sketch:plot_file")
