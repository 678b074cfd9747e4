"""`wavegen data build | info`: build a dataset of aligned text and audio, or summarise one."""

from __future__ import annotations

import json

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
    from wavegen.data import build as builder
    from wavegen.data.dataset import samples_per_tick

    transpositions = builder.parse_transpose(args.transpose)
    samples_per_tick(args.sample_rate, args.tick_ms)  # before the corpus is searched
    sources = builder.select_sources(corpus=args.corpus, midi_dir=args.midi_dir, limit=args.limit)
    with Bar("building", "file") as bar:
        bar.start(len(sources))
        result = builder.build(sources, args.out, sample_rate_hz=args.sample_rate, tick_ms=args.tick_ms,
                               transpositions=transpositions, fold_octaves=args.fold_octaves, soundfont=args.soundfont,
                               jobs=args.jobs, progress=bar.to)
    for s in result.skipped:
        say(f"{PROG}: skipped {s['reason']}")
    items = result.manifest["items"]
    print(f"built {args.out}: {len(items)} items ({result.built} rendered, {result.reused} from the cache), "
          f"{sum(it['seconds'] for it in items) / 3600:.2f} h of audio, {len(result.skipped)} files skipped, "
          f"{result.seconds:.1f} s")
    if not items:
        raise WavegenError(f"{args.out}: no piece could be built; see the reasons above")
    return 0


@command("data info", "pieces, hours per split, keys used, skipped files", arg("dir", metavar="DIR"),
         arg("--json", action="store_true", help="print the summary as JSON"))
def info(args) -> int:
    from wavegen.data import dataset
    from wavegen.notes.plot import pitch_name

    summary = dataset.info(dataset.load(args.dir))
    print(json.dumps(summary, indent=1) if args.json else dataset.info_text(summary, pitch_name))
    return 0
