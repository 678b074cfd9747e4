"""`wavegen <command>`: the command line. Only this module parses arguments or prints.

Exit status: 0 on success, 2 for bad input or usage (one line on stderr), 1 for an internal error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from wavegen import __version__
from wavegen.errors import WavegenError

PROG = "wavegen"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line and exits 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a whole number") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{s} must be positive")
    return v


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a number") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"{s} must be a positive number")
    return v


def _warn(messages: Sequence[str]) -> None:
    for m in messages:
        print(f"{PROG}: warning: {m}", file=sys.stderr)


def _check_suffix(path: str, allowed: Sequence[str], what: str) -> Path:
    p = Path(path)
    if p.suffix.lower() not in allowed:
        raise WavegenError(f"{p}: {what} must end in {' or '.join(allowed)}")
    return p


def _dbfs(x: float) -> str:
    import math

    return "-inf dBFS" if x <= 0 else f"{20 * math.log10(x):.1f} dBFS"


# ---------------------------------------------------------------------------------------------
# commands


def cmd_encode(args: argparse.Namespace) -> int:
    from wavegen.notes import text as T
    from wavegen.notes.midi import read_midi

    read = read_midi(args.input, fold_octaves=args.fold_octaves)
    _warn(read.warnings)
    meta = {"style": args.style} if args.style else {}
    kt = T.from_notes(read.notes, args.tick_ms, meta=meta)
    out = T.write(kt)
    if args.output:
        T.write_file(args.output, kt)
        print(f"wrote {args.output}: {kt.n_ticks} ticks ({kt.n_ticks * kt.tick_s:.1f} s), {len(kt.notes())} notes")
    else:
        sys.stdout.write(out)
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from wavegen.notes import text as T
    from wavegen.notes.midi import write_midi

    _check_suffix(args.output, (".mid", ".midi"), "the MIDI output")
    kt = T.read_file(args.input)
    write_midi(args.output, kt)
    print(f"wrote {args.output}: {len(kt.notes())} notes, {kt.duration_s:.1f} s")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from wavegen.audio import output_format, write_audio
    from wavegen.notes import sketch
    from wavegen.notes.render import render_notes

    output_format(args.output)
    sk = sketch.load(args.input, fold_octaves=args.fold_octaves)
    _warn(sk.warnings)
    t0 = time.perf_counter()
    min_s = sk.keytext.n_ticks * sk.keytext.tick_s if sk.is_text else 0.0
    r = render_notes(sk.notes, sample_rate_hz=args.sample_rate, soundfont=args.soundfont, min_seconds=min_s)
    rep = write_audio(args.output, r.audio, r.sample_rate_hz)
    if r.clipped:
        _warn([f"{args.output}: {r.clipped} samples clipped (peak {_dbfs(r.peak)})"])
    print(
        f"wrote {args.output}: {rep.n_samples / r.sample_rate_hz:.1f} s at {r.sample_rate_hz} Hz, "
        f"peak {_dbfs(r.peak)}, {r.clipped} clipped samples, {time.perf_counter() - t0:.1f} s to render"
    )
    return 0


AUDIO_SUFFIXES = (".wav", ".flac")


def cmd_plot(args: argparse.Namespace) -> int:
    from wavegen.audio import read_audio
    from wavegen.notes import plot, sketch

    _check_suffix(args.output, (".png",), "the picture")
    src = Path(args.input)
    if src.suffix.lower() in AUDIO_SUFFIXES:
        audio, sr = read_audio(src)
        notes = None
        if args.notes:
            sk = sketch.load(args.notes)
            _warn(sk.warnings)
            notes = sk.notes
        plot.plot_audio(args.output, audio, sr, notes=notes, title=src.name)
    else:
        if args.notes:
            raise WavegenError(f"--notes goes with an audio file (.wav, .flac), not with {src.name}")
        sk = sketch.load(src)
        _warn(sk.warnings)
        plot.plot_notes(args.output, sk.notes, title=src.name)
    print(f"wrote {args.output}")
    return 0


def cmd_data_build(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from wavegen.data import build, dataset
    transpositions = build.parse_transpose(args.transpose)
    dataset.samples_per_tick(args.sample_rate, args.tick_ms)
    sources = build.corpus_sources(args.corpus) if args.corpus else build.midi_dir_sources(args.midi_dir)
    if args.limit:
        sources = sources[: args.limit]
    bar = tqdm(total=len(sources), unit="file", desc="building", disable=None)

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    try:
        result = build.build(
            sources, args.out, sample_rate_hz=args.sample_rate, tick_ms=args.tick_ms,
            transpositions=transpositions, fold_octaves=args.fold_octaves,
            soundfont=args.soundfont, jobs=args.jobs, progress=progress,
        )
    finally:
        bar.close()
    for s in result.skipped:
        print(f"{PROG}: skipped {s['reason']}", file=sys.stderr)
    items = result.manifest["items"]
    hours = sum(it["seconds"] for it in items) / 3600
    print(
        f"built {args.out}: {len(items)} items ({result.built} rendered, {result.reused} from the cache), "
        f"{hours:.2f} h of audio, {len(result.skipped)} files skipped, {result.seconds:.1f} s"
    )
    if not items:
        raise WavegenError(f"{args.out}: no piece could be built; see the reasons above")
    return 0


def cmd_data_info(args: argparse.Namespace) -> int:
    from wavegen.data import dataset
    from wavegen.notes.plot import pitch_name

    summary = dataset.info(dataset.load(args.dir))
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"dataset {summary['root']}: {summary['sample_rate_hz']} Hz, {summary['tick_ms']:g} ms ticks, "
          f"transpositions {summary['transpositions']}")
    print(f"{'split':<8}{'pieces':>8}{'items':>8}{'hours':>9}")
    for split, s in summary["splits"].items():
        print(f"{split:<8}{s['pieces']:>8}{s['items']:>8}{s['hours']:>9.3f}")
    print(f"{'all':<8}{summary['pieces']:>8}{summary['items']:>8}{summary['hours']:>9.3f}")
    if summary["lowest_pitch"] is not None:
        print(f"keys used: {summary['keys_used']} of 88, {pitch_name(summary['lowest_pitch'])} "
              f"(MIDI {summary['lowest_pitch']}) to {pitch_name(summary['highest_pitch'])} "
              f"(MIDI {summary['highest_pitch']}): {summary['keys']}")
    print(f"clipped samples: {summary['clipped_samples']}; on disk: {summary['bytes_on_disk'] / 2**20:.1f} MiB")
    print(f"skipped files: {len(summary['skipped'])}")
    for s in summary["skipped"]:
        print(f"  {s['reason']}")
    return 0


DEFAULT_DATA = "data/build/bach"


def cmd_train(args: argparse.Namespace) -> int:
    from wavegen.config import load_config
    from wavegen.train.wavenet import train_wavenet

    cfg = load_config(args.config, args.set or [], kind="wavenet")
    result = train_wavenet(cfg, args.data, args.out, log=lambda m: print(m, file=sys.stderr))
    if not result.is_main:
        return 0
    print(result.summary())
    if result.status == "preempted":
        print(f"{args.out}: checkpoint saved; run the same command again to resume", file=sys.stderr)
    return 0


def _sampling(args: argparse.Namespace | None, loaded) -> dict[str, float]:
    """temperature and min_p: the command line's where given, else the model's own."""
    t = getattr(args, "temperature", None)
    p = getattr(args, "min_p", None)
    t = loaded.temperature if t is None else t
    p = loaded.min_p if p is None else p
    if not 0.0 <= p < 1.0:
        raise WavegenError(f"--min-p {p:g}: must be at least 0 and below 1 (0 turns it off)")
    return {"temperature": t, "min_p": p}


def cmd_generate(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from wavegen.audio import output_format, write_audio
    from wavegen.nn import checkpoint
    from wavegen.notes import sketch
    from wavegen.synth.generate import choose_engine, play
    from wavegen.synth.sketchcond import sketch_samples

    output_format(args.output)
    if args.seconds is not None and args.seconds <= 0:
        raise WavegenError(f"--seconds {args.seconds}: the duration must be positive")
    loaded = checkpoint.load(args.checkpoint)
    sampling = _sampling(args, loaded)
    sr = loaded.sample_rate_hz
    sk = None
    if args.sketch:
        sk = sketch.load(args.sketch, tick_ms=loaded.tick_ms)
        _warn(sk.warnings)
        if sk.keytext.tick_ms != loaded.tick_ms:
            raise WavegenError(f"{args.sketch}: ticks of {sk.keytext.tick_ms:g} ms, but the model was trained "
                               f"on {loaded.tick_ms:g} ms ticks; re-encode the sketch with --tick-ms {loaded.tick_ms:g}")
    if args.seconds is not None:
        n = int(round(args.seconds * sr))
    elif sk is not None:
        n = sketch_samples(sk.keytext, sr)
    else:
        raise WavegenError("give --seconds (how long to play) or --sketch (what to play)")
    style = None
    if args.style:
        if args.style not in loaded.styles:
            known = ", ".join(loaded.styles) or "none"
            raise WavegenError(f"--style {args.style}: the model knows the styles: {known}")
        style = loaded.styles.index(args.style)
    elif sk is not None and sk.keytext.meta.get("style") in loaded.styles:
        style = loaded.styles.index(sk.keytext.meta["style"])
    if sk is None and loaded.model.uses_notes:
        _warn(["this model follows notes: without --sketch it plays an empty sketch (near silence)"])
    t0 = time.perf_counter()
    bar = tqdm(total=n * args.batch, unit="sample", unit_scale=True, disable=None, desc="generating")

    def progress(done: int) -> None:
        bar.update(done * args.batch - bar.n)
        rate = bar.n / max(time.perf_counter() - t0, 1e-9)
        bar.set_postfix(realtime=f"{rate / sr:.3f}x")

    engine, notice = choose_engine(loaded.model, args.engine)
    if notice:
        _warn([notice])
    audio = play(loaded.model, n, sample_rate_hz=sr, sketch=sk.keytext if sk else None, engine=engine,
                 batch=args.batch, threads=args.threads, **sampling, seed=args.seed, style=style, progress=progress)
    bar.close()
    took = time.perf_counter() - t0
    out = Path(args.output)
    paths = [out] if args.batch == 1 else [out.with_name(f"{out.stem}-{i + 1}{out.suffix}") for i in range(args.batch)]
    for path, take in zip(paths, audio, strict=True):
        if not np.all(np.isfinite(take)):
            raise RuntimeError("generated audio is not finite")
        write_audio(path, take, sr)
        if args.plot:
            from wavegen.notes import plot
            plot.plot_audio(path.with_suffix(".png"), take, sr, notes=sk.notes if sk else None,
                            title=f"{path.name}: generated by {loaded.path.name}")
    rate = n * args.batch / took
    for path in paths:
        print(f"wrote {path}: {n / sr:.1f} s at {sr} Hz")
    print(f"{n * args.batch} samples in {took:.1f} s: {rate:,.0f} samples/s, {rate / sr:.3f}x real time")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from wavegen.data import dataset
    from wavegen.evaluate.report import evaluate, write_report
    from wavegen.nn import checkpoint

    if args.pieces <= 0 or args.seconds <= 0:
        raise WavegenError("--pieces and --seconds must be positive")
    report_path = Path(args.output)
    if report_path.suffix.lower() != ".json":
        raise WavegenError(f"{report_path}: the report must end in .json (a .md table is written beside it)")
    loaded = checkpoint.load(args.checkpoint)
    sampling = _sampling(args, loaded)
    ds = dataset.load(args.data)
    out_dir = report_path.with_name(report_path.stem + "-pieces")
    report = evaluate(loaded, ds, out_dir, split=args.split, pieces=args.pieces, seconds=args.seconds,
                      seed=args.seed, **sampling, progress=lambda m: print(f"{PROG}: {m}", file=sys.stderr))
    json_path, md_path = write_report(report, report_path)
    print(md_path.read_text(), end="")
    print(f"wrote {json_path}, {md_path} and pictures and clips in {out_dir}/ ({report['wall_seconds']:.0f} s)")
    return 0


def cmd_train_composer(args: argparse.Namespace) -> int:
    from wavegen.config import load_config
    from wavegen.train.composer import train_composer

    cfg = load_config(args.config, args.set or [], kind="composer")
    result = train_composer(cfg, args.data, args.out, log=lambda m: print(m, file=sys.stderr))
    if result.is_main:
        print(result.summary())
    return 0


def cmd_compose(args: argparse.Namespace) -> int:
    import numpy as np

    from wavegen.compose import piece
    from wavegen.compose.form import parse_form
    from wavegen.compose.load import load_composer
    from wavegen.notes import text as T

    form = parse_form(args.form) if args.form else None
    model = load_composer(args.model)
    n = piece.length_in_ticks(model.tick_ms, ticks=args.ticks, seconds=args.seconds)
    piece.check_style(model, args.style)
    from wavegen.audio import output_format

    for path in (args.perform, args.render):
        if path:
            output_format(path)
    if args.stream and (args.output or args.perform or args.render or args.form):
        raise WavegenError("--stream plays without end: it does not go with -o, --perform, --render or --form")
    prime = piece.read_prime(args.prime, model.tick_ms) if args.prime else []
    rng = np.random.default_rng(args.seed)
    if args.stream:
        limit = n if (args.ticks is not None or args.seconds is not None) else None
        return _stream(args, model, prime, rng, limit)
    composed = piece.compose(model, n, temperature=args.temperature, rng=rng, prime=prime, form=form,
                             style=args.style)
    kt = composed.keytext
    sections = " ".join(f"{letter}:{a}-{b}" for letter, a, b in composed.sections)
    if args.output:
        T.write_file(args.output, kt)
        print(f"wrote {args.output}: {kt.n_ticks} ticks ({kt.n_ticks * kt.tick_s:.1f} s)"
              + (f", sections {sections}" if sections else ""))
    else:
        sys.stdout.write(T.write(kt))
    if args.render:
        from wavegen.audio import write_audio
        from wavegen.notes.render import render_notes

        r = render_notes(kt.notes(), min_seconds=kt.n_ticks * kt.tick_s)
        write_audio(args.render, r.audio, r.sample_rate_hz)
        print(f"wrote {args.render}: the SoundFont rendering", file=sys.stderr if not args.output else sys.stdout)
    if args.perform:
        from wavegen.audio import write_audio
        from wavegen.nn import checkpoint
        from wavegen.synth.generate import play
        from wavegen.synth.sketchcond import sketch_samples

        loaded = checkpoint.load(args.checkpoint)
        if loaded.tick_ms != kt.tick_ms:
            raise WavegenError(f"the WaveNet plays {loaded.tick_ms:g} ms ticks, the composer writes {kt.tick_ms:g} ms")
        t0 = time.perf_counter()
        audio = play(loaded.model, sketch_samples(kt, loaded.sample_rate_hz), sample_rate_hz=loaded.sample_rate_hz,
                     sketch=kt, seed=args.seed, **_sampling(None, loaded))[0]
        write_audio(args.perform, audio, loaded.sample_rate_hz)
        print(f"wrote {args.perform}: performed by {loaded.path.name} in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr if not args.output else sys.stdout)
    return 0


def _stream(args: argparse.Namespace, model, prime: list[str], rng, limit: int | None) -> int:
    """Compose and play without end (or for `limit` ticks); SIGINT or SIGTERM ends it cleanly."""
    from wavegen.audio import GrowingWav
    from wavegen.nn import checkpoint
    from wavegen.synth.fast import FastWaveNet, why_not
    from wavegen.synth.stream import StreamPlayer, stream_compose

    loaded = checkpoint.load(args.checkpoint)
    reason = why_not(loaded.model)
    if reason:
        raise WavegenError(f"--stream needs the fast path: {reason}")
    if loaded.tick_ms != model.tick_ms:
        raise WavegenError(f"the WaveNet plays {loaded.tick_ms:g} ms ticks, the composer writes {model.tick_ms:g} ms")
    if args.stream != "-":
        from wavegen.files import check_output_dir

        check_output_dir(Path(args.stream).parent if str(Path(args.stream).parent) else ".")
    sr = loaded.sample_rate_hz
    player = StreamPlayer(FastWaveNet(loaded.model), sr, **_sampling(None, loaded), seed=args.seed)
    t0 = time.perf_counter()
    wav = GrowingWav(args.stream, sr)
    done, stopped = stream_compose(model, player, wav, prime, rng, temperature=args.temperature, limit=limit)
    seconds = wav.frames / sr
    print(f"{PROG}: streamed {seconds:.1f} s ({done} ticks) to {args.stream} in {time.perf_counter() - t0:.1f} s"
          + ("; stopped by a signal" if stopped else ""), file=sys.stderr)
    return 0


def cmd_evaluate_composer(args: argparse.Namespace) -> int:
    from wavegen.compose.load import DEFAULT_COMPOSER, load_composer
    from wavegen.data import dataset
    from wavegen.evaluate.composer import evaluate_composer, report_markdown
    from wavegen.files import write_text_atomic

    model = load_composer(args.model)
    report = evaluate_composer(model, dataset.load(args.data), split=args.split, samples=args.samples,
                               seconds=args.seconds, temperature=args.temperature, seed=args.seed)
    report["model"] = args.model or DEFAULT_COMPOSER
    md = report_markdown(report)
    if args.output:
        write_text_atomic(args.output, json.dumps(report, indent=1) + "\n")
        write_text_atomic(Path(args.output).with_suffix(".md"), md)
    print(md, end="")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from wavegen.evaluate.demo import demo

    d = demo(args.output, piece=args.piece, model=args.checkpoint, seconds=args.seconds, seed=args.seed)
    _warn(d.warnings)
    if d.model is not None:
        print(f"Bach chorale {d.piece} (held out from training), {d.seconds:.1f} s: generated in "
              f"{d.generation_seconds:.1f} s ({d.seconds / d.generation_seconds:.2f}x real time) by {d.model}")
    else:
        print(f"Bach chorale {d.piece}, {d.seconds:.1f} s")
    print("\n".join(f"  {path}  {what}" for path, what in d.files))
    print(f"done in {d.wall_seconds:.1f} s")
    return 0


# ---------------------------------------------------------------------------------------------
# parser


def build_parser() -> argparse.ArgumentParser:
    from wavegen.compose.load import DEFAULT_COMPOSER
    from wavegen.evaluate.demo import DEMO_PIECE

    p = _Parser(prog=PROG, description="wavegen: harpsichord music from the 88-key text format.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    p.add_argument("--traceback", action="store_true", help="on an internal error, print the traceback")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help: str, func) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=func)
        return sp

    sp = add("encode", "MIDI -> 88-key text", cmd_encode)
    sp.add_argument("input", metavar="IN.mid")
    sp.add_argument("-o", "--output", metavar="OUT.txt", help="write here (default: standard output)")
    sp.add_argument("--tick-ms", type=_positive_float, default=50.0, help="tick length in ms (default 50)")
    sp.add_argument("--fold-octaves", action="store_true", help="move notes outside the 88 keys by octaves instead of dropping them")
    sp.add_argument("--style", help="a style tag for the header, e.g. bach")

    sp = add("decode", "88-key text -> MIDI", cmd_decode)
    sp.add_argument("input", metavar="IN.txt")
    sp.add_argument("-o", "--output", metavar="OUT.mid", required=True)

    sp = add("render", "88-key text or MIDI -> harpsichord audio (SoundFont reference)", cmd_render)
    sp.add_argument("input", metavar="IN.{mid,txt}")
    sp.add_argument("-o", "--output", metavar="OUT.wav", required=True, help=".wav or .flac, 16-bit mono")
    sp.add_argument("--sample-rate", type=_positive_int, default=16_000, help="Hz (default 16000)")
    sp.add_argument("--soundfont", metavar="SF2", help="default: FluidR3_GM.sf2 if installed, else pretty_midi's TimGM6mb.sf2")
    sp.add_argument("--fold-octaves", action="store_true", help="MIDI: fold notes outside the 88 keys by octaves")

    sp = add("plot", "a picture of a text, MIDI or audio file", cmd_plot)
    sp.add_argument("input", metavar="IN.{mid,txt,wav}")
    sp.add_argument("-o", "--output", metavar="OUT.png", required=True)
    sp.add_argument("--notes", metavar="NOTES.{txt,mid}", help="with audio: draw these notes over its spectrogram")

    dp = sub.add_parser("data", help="build or inspect a dataset of aligned text and audio")
    dsub = dp.add_subparsers(dest="data_command", metavar="SUBCOMMAND", parser_class=_Parser, required=True)
    sp = dsub.add_parser("build", help="build (or update) a dataset folder", description=(
        "Encode every score as 88-key text and render it to harpsichord audio. Parallel, cached by "
        "content: a re-run only does new work. Files that fail are skipped and listed."))
    sp.set_defaults(func=cmd_data_build)
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--corpus", metavar="NAME", help="a composer in music21's corpus: bach")
    src.add_argument("--midi-dir", metavar="DIR", help="a folder of your own MIDI files (searched recursively)")
    sp.add_argument("--out", metavar="DIR", required=True)
    sp.add_argument("--limit", type=_positive_int, help="only the first N files")
    sp.add_argument("--transpose", default="0", metavar="LO..HI", help="semitone shifts, each a separate rendering, e.g. -3..3 (default 0)")
    sp.add_argument("--jobs", type=_positive_int, help="worker processes (default: all cores)")
    sp.add_argument("--sample-rate", type=_positive_int, default=16_000)
    sp.add_argument("--tick-ms", type=_positive_float, default=50.0)
    sp.add_argument("--soundfont", metavar="SF2")
    sp.add_argument("--fold-octaves", action="store_true")
    sp = dsub.add_parser("info", help="pieces, hours per split, keys used, skipped files")
    sp.set_defaults(func=cmd_data_info)
    sp.add_argument("dir", metavar="DIR")
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")

    sp = add("train", "train a WaveNet (resumes if --out holds a run)", cmd_train)
    sp.add_argument("--config", metavar="FILE", help="TOML overrides of the defaults, e.g. configs/cpu.toml")
    sp.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override one setting; repeatable")
    sp.add_argument("--data", default=DEFAULT_DATA, metavar="DIR", help=f"a dataset from `wavegen data build` (default {DEFAULT_DATA})")
    sp.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder: checkpoints, samples, logs")

    sp = add("generate", "generate harpsichord audio with a trained WaveNet", cmd_generate)
    sp.add_argument("--checkpoint", metavar="PATH", help="a shipped model's name, a checkpoint folder or a run folder "
                    "(default: the shipped harpsichord-cpu model)")
    sp.add_argument("--sketch", metavar="IN.{txt,mid}", help="notes to follow (88-key text or MIDI)")
    sp.add_argument("--seconds", type=float, help="length (default: the sketch plus a 0.5 s release tail)")
    sp.add_argument("--temperature", type=float, help="sampling temperature (default: the model's, 1 unless its "
                    "card says otherwise; 0 = greedy)")
    sp.add_argument("--min-p", type=float, metavar="P", help="never draw a sample value less likely than P times "
                    "the most likely one, in [0, 1) (default: the model's, 0 = off, unless its card says otherwise)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--batch", type=_positive_int, default=1, help="takes to write: OUT-1.wav, OUT-2.wav, ...")
    sp.add_argument("--style", help="a style the model was trained on (default: the sketch's header style)")
    sp.add_argument("--plot", action="store_true", help="also write a PNG: spectrogram with the sketch's notes")
    sp.add_argument("--engine", choices=("auto", "fast", "torch"), default="auto",
                    help="fast: the compiled CPU path; torch: the PyTorch step; auto (default): fast when it can")
    sp.add_argument("--threads", type=_positive_int, help="threads for the fast path (default: one per take, up to the cores)")
    sp.add_argument("-o", "--output", required=True, metavar="OUT.wav")

    sp = add("evaluate", "measure how well a model plays held-out pieces", cmd_evaluate)
    sp.add_argument("--checkpoint", metavar="PATH", help="a shipped model's name, a checkpoint folder or a run "
                    "folder (default: the shipped harpsichord-cpu model)")
    sp.add_argument("--data", default=DEFAULT_DATA, metavar="DIR", help=f"a dataset (default {DEFAULT_DATA})")
    sp.add_argument("--split", default="test", choices=("train", "valid", "test"))
    sp.add_argument("--pieces", type=int, default=5, help="held-out pieces to play (default 5)")
    sp.add_argument("--seconds", type=float, default=15.0, help="seconds of each piece (default 15)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--temperature", type=float, help="sampling temperature (default: the model's)")
    sp.add_argument("--min-p", type=float, metavar="P", help="min-p cut of sampling, in [0, 1) (default: the model's)")
    sp.add_argument("-o", "--output", default="evaluation/report.json", metavar="REPORT.json",
                    help="the report (default evaluation/report.json); REPORT.md and REPORT-pieces/ beside it")

    sp = add("train-composer", "train a composer of new sketches (Markov chain or LSTM)", cmd_train_composer)
    sp.add_argument("--config", metavar="FILE", help="configs/composer-markov.toml or configs/composer-lstm.toml")
    sp.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")
    sp.add_argument("--data", default=DEFAULT_DATA, metavar="DIR")
    sp.add_argument("--out", required=True, metavar="RUN_DIR")

    sp = add("compose", "write a new sketch in 88-key text (and play it)", cmd_compose)
    sp.add_argument("-o", "--output", metavar="OUT.txt", help="write here (default: standard output)")
    length = sp.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, help="length in seconds (default 20)")
    length.add_argument("--ticks", type=int, help="length in ticks (with --form: rounded down to equal sections)")
    sp.add_argument("--temperature", type=float, default=1.0)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--prime", metavar="IN.txt", help="88-key text to continue")
    sp.add_argument("--form", help="large-scale form, e.g. ABACABA: a section per new letter, repeated where it recurs")
    sp.add_argument("--style", help="a style the composer learned")
    sp.add_argument("--model", metavar="NAME|PATH", help=f"composer model (default: the shipped {DEFAULT_COMPOSER})")
    sp.add_argument("--perform", metavar="OUT.wav", help="have the WaveNet play the sketch")
    sp.add_argument("--render", metavar="OUT.wav", help="render the sketch with the SoundFont")
    sp.add_argument("--checkpoint", metavar="PATH", help="the WaveNet for --perform and --stream (default: the shipped one)")
    sp.add_argument("--stream", metavar="OUT.wav|-", help="compose and play without end (or for --seconds), "
                    "writing a WAV that grows (or to standard output); Ctrl-C or SIGTERM ends it cleanly")

    sp = add("evaluate-composer", "held-out bits per tick, copy check and musical statistics", cmd_evaluate_composer)
    sp.add_argument("--model", metavar="NAME|PATH")
    sp.add_argument("--data", default=DEFAULT_DATA, metavar="DIR")
    sp.add_argument("--split", default="test", choices=("valid", "test"))
    sp.add_argument("--samples", type=_positive_int, default=5)
    sp.add_argument("--seconds", type=_positive_float, default=20.0)
    sp.add_argument("--temperature", type=float, default=1.0)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("-o", "--output", metavar="REPORT.json")

    sp = add("demo", "the main job: the shipped WaveNet plays a held-out Bach chorale, beside its reference", cmd_demo)
    sp.add_argument("-o", "--output", metavar="DIR", default="demo", help="folder for the results (default: demo)")
    sp.add_argument("--piece", default=DEMO_PIECE, help=f"a Bach chorale in music21's corpus (default {DEMO_PIECE}, held out)")
    sp.add_argument("--checkpoint", metavar="PATH", help="another model (default: the shipped harpsichord-cpu)")
    sp.add_argument("--seconds", type=_positive_float, help="only the first seconds (default: the whole chorale)")
    sp.add_argument("--seed", type=int, default=0)
    return p


def _join_negative_values(argv: list[str], options: Sequence[str] = ("--transpose",)) -> list[str]:
    """`--transpose -3..3` -> `--transpose=-3..3`: argparse would take '-3..3' for an option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in options and i + 1 < len(argv) and argv[i + 1].startswith("-"):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = _join_negative_values(list(sys.argv[1:] if argv is None else argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors
        return int(e.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except WavegenError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file the system would not read or write: the user's to fix
        if not e.filename:
            raise
        print(f"{PROG}: error: {e.filename}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: say so on one line; the traceback on request
        if args.traceback:
            traceback.print_exc()
        print(f"{PROG}: internal error: {type(e).__name__}: {e} (rerun with --traceback for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
