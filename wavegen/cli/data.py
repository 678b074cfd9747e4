"""`wavegen data build | info`: build a dataset of aligned text and audio, or summarise one."""

from __future__ import annotations

from wavegen.cli.common import PROG, Bar, arg, command, one_of, positive_float, positive_int, say
from wavegen.data.corpora import CORPUS_NAMES
from wavegen.errors import WavegenError


@command("data build", "build (or update) a dataset folder", one_of(
         arg("--corpus", metavar="NAME", choices=CORPUS_NAMES, help=f"a corpus: {', '.join(CORPUS_NAMES)}"),
         arg("--midi-dir", metavar="DIR", help="a folder of your own MIDI files (searched recursively)"), required=True),
         arg("--out", metavar="DIR", required=True), arg("--limit", type=positive_int, help="N pieces of each corpus (not its bound) or the first N files"),
         arg("--transpose", default="0", metavar="LO..HI", help="semitone shifts, each a separate rendering, e.g. -3..3 (default 0)"),
         arg("--jobs", type=positive_int, help="worker processes (default: all cores)"),
         arg("--sample-rate", type=positive_int, default=16_000), arg("--tick-ms", type=positive_float, default=50.0),
         arg("--soundfont", metavar="SF2"), arg("--fold-octaves", action="store_true"), description=(
         "Encode every score as 88-key text and render it to harpsichord audio. Parallel, cached by content: a "
         "re-run only does new work. Files that fail are skipped and listed."))
def build(args) -> int:
    from wavegen.data.build import build_dataset

    with Bar("building", "file") as bar:
        result = build_dataset(args.out, corpus=args.corpus, midi_dir=args.midi_dir, limit=args.limit,
                               transpose=args.transpose, sample_rate_hz=args.sample_rate, tick_ms=args.tick_ms,
                               fold_octaves=args.fold_octaves, soundfont=args.soundfont, jobs=args.jobs,
                               note=lambda m: say(f"{PROG}: {m}"), on_start=bar.start, progress=bar.to)
    print(result.summary())
    if result.error:
        raise WavegenError(result.error)
    return 0


@command("data info", "pieces, hours per split, keys used, skipped files", arg("dir", metavar="DIR"),
         arg("--json", action="store_true", help="print the summary as JSON"))
def info(args) -> int:
    from wavegen.data.dataset import describe

    print(describe(args.dir, as_json=args.json).summary())
    return 0
