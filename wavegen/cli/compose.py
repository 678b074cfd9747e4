"""`wavegen train-composer | compose | evaluate-composer`: composers of new sketches."""

from __future__ import annotations

from wavegen.cli.common import (
    DATA,
    PROG,
    RUN_DIR,
    SEED,
    SET,
    arg,
    command,
    non_negative_float,
    one_of,
    positive_float,
    positive_int,
    say,
    warn,
)
from wavegen.compose.load import DEFAULT_COMPOSER

MODEL = arg("--model", metavar="NAME|PATH", help=f"composer model (default: the shipped {DEFAULT_COMPOSER})")


@command("train-composer", "train a composer of new sketches (Markov chain or LSTM)",
         arg("--config", metavar="FILE", help="configs/composer-markov.toml or configs/composer-lstm.toml"), SET, DATA, RUN_DIR)
def train_composer(args) -> int:
    from wavegen.config import config_text, load_config
    from wavegen.train.composer import train_composer as run

    cfg = load_config(args.config, args.set or [], kind="composer")
    if args.show_config:
        return print(config_text(cfg), end="") or 0
    result = run(cfg, args.data, args.out, log=say)
    if result.is_main:
        print(result.summary())
    return 0


@command("compose", "write a new sketch in 88-key text (and play it)",
         arg("-o", "--output", metavar="OUT.txt", help="write here (default: standard output)"),
         one_of(arg("--seconds", type=positive_float, help="length in seconds (default 20)"),
                arg("--ticks", type=positive_int, help="length in ticks (with --form: rounded down to equal sections)")),
         arg("--temperature", type=non_negative_float, default=1.0), SEED, arg("--prime", metavar="IN.txt", help="88-key text to continue"),
         arg("--form", help="large-scale form, e.g. ABACABA: a section per new letter, repeated where it recurs"),
         arg("--style", help="a style the composer learned"), MODEL,
         arg("--perform", metavar="OUT.wav", help="have the WaveNet play the sketch"),
         arg("--render", metavar="OUT.wav", help="render the sketch with the SoundFont"),
         arg("--checkpoint", metavar="PATH", help="the WaveNet for --perform and --stream (default: the shipped one)"),
         arg("--stream", metavar="OUT.wav|-", help="compose and play without end (or for --seconds), writing a WAV "
             "that grows (or to standard output); Ctrl-C or SIGTERM ends it cleanly"))
def compose(args) -> int:
    from wavegen.compose.perform import compose_and_play
    s = compose_and_play(composer=args.model, ticks=args.ticks, seconds=args.seconds, temperature=args.temperature,
                         seed=args.seed, prime=args.prime, form=args.form, style=args.style, output=args.output,
                         render_to=args.render, perform_to=args.perform, stream_to=args.stream, model=args.checkpoint,
                         warn=warn, log=say, note=lambda m: say(f"{PROG}: {m}"))
    if text := s.summary():
        print(text, end="" if text.endswith("\n") else "\n")
    return 0


@command("evaluate-composer", "held-out bits per tick, copy check and musical statistics", MODEL, DATA,
         arg("--split", default="test", choices=("valid", "test")), arg("--samples", type=positive_int, default=5),
         arg("--seconds", type=positive_float, default=20.0), arg("--temperature", type=non_negative_float, default=1.0), SEED,
         arg("-o", "--output", metavar="REPORT.json"))
def evaluate_composer(args) -> int:
    from wavegen.evaluate.composer import evaluate_composer_to

    print(evaluate_composer_to(args.output, model=args.model, data=args.data, split=args.split, samples=args.samples,
                               seconds=args.seconds, temperature=args.temperature, seed=args.seed).summary(), end="")
    return 0
