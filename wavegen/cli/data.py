"""`wavegen data build | info`: build a dataset of aligned text and audio, or summarise one."""

from wavegen.cli.common import arg, command, one_of, positive_float, positive_int
from wavegen.data.corpora import CORPUS_NAMES

command("data build", "build (or update) a dataset folder", one_of(
        arg("--corpus", metavar="NAME", help=f"a corpus: {', '.join(CORPUS_NAMES)}, or several: bach,essen"),
        arg("--midi-dir", metavar="DIR", help="a folder of your own MIDI files (searched recursively)"),
        arg("--pairs", metavar="DIR", help="recordings with their notes: every audio file (WAV, FLAC, OGG, MP3) "
            "with a MIDI file of the same name beside it; read, not rendered"),
        arg("--maestro", metavar="DIR", help="a MAESTRO folder (maestro-vX.Y.Z.csv or .json): its recordings "
            "with their MIDI, its split kept"), required=True),
        arg("--out", metavar="DIR", required=True),
        arg("--limit", type=positive_int, help="N pieces of each corpus (not its bound) or the first N files"),
        arg("--transpose", default="0", metavar="LO..HI", help="semitone shifts, each a separate rendering, e.g. -3..3 "
            "(default 0)"), arg("--jobs", type=positive_int, help="worker processes (default: all cores)"),
        arg("--sample-rate", dest="sample_rate_hz", metavar="SAMPLE_RATE", type=positive_int, default=16_000),
        arg("--tick-ms", type=positive_float, default=50.0), arg("--soundfont", metavar="SF2|NAME", action="append",
            help="the harpsichord: a timbre (fluidr3, musescore-coupled, timgm6mb; musescore is fluidr3 7 dB "
            "softer), an .sf2/.sf3 file (FILE#N: its bank N), or NAME=FILE; repeat it to render every piece with each (several timbres: the model learns each, and "
            "`generate --timbre` picks one). Default: fluidr3 if installed, else timgm6mb"),
        arg("--fold-octaves", action="store_true"),
        arg("--style", help="recordings: the style id of their items (default pairs, or maestro)"),
        arg("--licence", help="recordings: their licence, recorded per item (default user-supplied, or "
            "MAESTRO's CC BY-NC-SA 4.0)"),
        arg("--max-lag-ms", type=positive_float, help="recordings: a lag of the sound behind its "
            "notes up to this is corrected, a larger one skips the recording (default 100)"),
        arg("--min-align-confidence", type=positive_float, help="recordings: below this alignment "
            "confidence the notes are taken for another piece's and the recording skipped (default 5.0; "
            "docs/data.md)"),
        call="wavegen.data.build:build_dataset", bar=("building", "file"),
        description="Encode every score as 88-key text and render it to harpsichord audio; or read recordings "
        "with their notes (--pairs, --maestro), their alignment checked and corrected, velocities and the "
        "sustain pedal kept. Parallel, cached by content: a re-run only does new work. Files that fail are "
        "skipped and listed.")
command("data info", "pieces, hours per split, keys used, skipped files", arg("path", metavar="DIR"),
        arg("--json", dest="as_json", action="store_true", help="print the summary as JSON"),
        call="wavegen.data.dataset:describe")
