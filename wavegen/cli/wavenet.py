"""`wavegen train | generate | evaluate | demo`: train a WaveNet, hear it, measure it."""

from __future__ import annotations

from wavegen.cli.common import (
    CHECKPOINT,
    DATA,
    MIN_P,
    PROG,
    RUN_DIR,
    SEED,
    SET,
    TEMPERATURE,
    Bar,
    arg,
    command,
    positive_float,
    positive_int,
    say,
    warn,
)
from wavegen.evaluate.demo import DEMO_PIECE


@command("train", "train a WaveNet (resumes if --out holds a run)",
         arg("--config", metavar="FILE", help="TOML overrides of the defaults, e.g. configs/cpu.toml"), SET, DATA, RUN_DIR)
def train(args) -> int:
    from wavegen.config import config_text, load_config
    from wavegen.train.wavenet import train_wavenet

    cfg = load_config(args.config, args.set or [], kind="wavenet")
    if args.show_config:
        return print(config_text(cfg), end="") or 0
    result = train_wavenet(cfg, args.data, args.out, log=say)
    if result.is_main:
        print(result.summary())
        if result.status == "preempted":
            say(f"{args.out}: checkpoint saved; run the same command again to resume")
    return 0


@command("generate", "generate harpsichord audio with a trained WaveNet", CHECKPOINT,
         arg("--sketch", metavar="IN.{txt,mid}", help="notes to follow (88-key text or MIDI)"),
         arg("--seconds", type=positive_float, help="length (default: the sketch plus a 0.5 s release tail)"), TEMPERATURE, MIN_P,
         SEED, arg("--batch", type=positive_int, default=1, help="takes to write: OUT-1.wav, OUT-2.wav, ..."),
         arg("--style", help="a style the model was trained on (default: the sketch's header style)"),
         arg("--plot", action="store_true", help="also write a PNG: spectrogram with the sketch's notes"),
         arg("--engine", choices=("auto", "fast", "torch"), default="auto",
             help="fast: the compiled CPU path; torch: the PyTorch step; auto (default): fast when it can"),
         arg("--threads", type=positive_int, help="threads for the fast path (default: one per take, up to the cores)"),
         arg("-o", "--output", required=True, metavar="OUT.wav"))
def generate(args) -> int:
    from wavegen.synth.takes import generate_takes

    with Bar("generating", "sample", per_step=args.batch) as bar:
        takes = generate_takes(args.output, model=args.checkpoint, sketch=args.sketch, seconds=args.seconds,
                               batch=args.batch, style=args.style, temperature=args.temperature, min_p=args.min_p,
                               seed=args.seed, engine=args.engine, threads=args.threads, plot=args.plot, warn=warn,
                               on_start=bar.start, progress=bar.to)
    print(takes.summary())
    return 0


@command("evaluate", "measure how well a model plays held-out pieces", CHECKPOINT, DATA,
         arg("--split", default="test", choices=("train", "valid", "test")),
         arg("--pieces", type=positive_int, default=5, help="held-out pieces to play (default 5)"),
         arg("--seconds", type=positive_float, default=15.0, help="seconds of each piece (default 15)"), SEED, TEMPERATURE, MIN_P,
         arg("-o", "--output", default="evaluation/report.json", metavar="REPORT.json",
             help="the report (default evaluation/report.json); REPORT.md and REPORT-pieces/ beside it"))
def evaluate(args) -> int:
    from wavegen.evaluate.report import evaluate_to

    w = evaluate_to(args.output, model=args.checkpoint, data=args.data, split=args.split, pieces=args.pieces,
                    seconds=args.seconds, seed=args.seed, temperature=args.temperature, min_p=args.min_p,
                    progress=lambda m: say(f"{PROG}: {m}"))
    print(w.summary())
    return 0


@command("demo", "the main job: the shipped WaveNet plays a held-out Bach chorale, beside its reference",
         arg("-o", "--output", metavar="DIR", default="demo", help="folder for the results (default: demo)"),
         arg("--piece", default=DEMO_PIECE, help=f"a Bach chorale in music21's corpus (default {DEMO_PIECE}, held out)"),
         arg("--checkpoint", metavar="PATH", help="another model (default: the shipped harpsichord-cpu)"),
         arg("--seconds", type=positive_float, help="only the first seconds (default: the whole chorale)"), SEED)
def demo(args) -> int:
    from wavegen.evaluate.demo import demo as run

    with Bar("generating", "sample") as bar:
        d = run(args.output, piece=args.piece, model=args.checkpoint, seconds=args.seconds, seed=args.seed,
                on_start=bar.start, progress=bar.to, warn=warn)
    print(d.summary())
    return 0
