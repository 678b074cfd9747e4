"""What every command shares: the registry (a command is its options and the library function it calls),
one-line usage errors, checked numbers, shared options, and what goes to standard error."""

import argparse
import inspect
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pkgutil import resolve_name

from wavegen.errors import WavegenError
from wavegen.progress import Bar

PROG = "wavegen"
DEFAULT_DATA = "data/build/bach"
COMMANDS: list[tuple] = []  # (name, help, options, description, call, run) in the order of `wavegen --help`


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line and exits 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def arg(*names: str, **kwargs) -> tuple:
    return names, kwargs


def one_of(*options: tuple, required: bool = False) -> tuple:
    """Options that exclude each other."""
    return ("one_of", required), options


def add_options(p, options: tuple) -> None:
    for names, kwargs in options:
        if names and names[0] == "one_of":
            add_options(p.add_mutually_exclusive_group(required=names[1]), kwargs)
        else:
            p.add_argument(*names, **kwargs)


def command(name: str, help: str, *options: tuple, call: str, bar: tuple = (), config: str = "",
            description: str | None = None, **given) -> None:
    """Register the command `name` ("data build" in a group) with its options (arg, one_of): it is the
    library function `call` (see `invoke`), or with `config` (a kind of run config) `train` with it."""
    run = (lambda args: train(args, config, call)) if config else (lambda args: show(invoke(call, args, bar, **given)))
    COMMANDS.append((name, help, options, description, call, run))


def invoke(call: str, args: argparse.Namespace, bar: tuple = (), **given):
    """Call `call` ("module:function", imported only now: --help loads no torch) with each parsed option
    it names as a parameter (dest= renames one), `given`, and the callbacks it names: warn, log, note and,
    with a `bar` (what, unit[, the option that counts the takes played at once]), on_start and progress."""
    fn = resolve_name(call)
    params = inspect.signature(fn).parameters
    b = Bar(bar[0], bar[1], getattr(args, bar[2]) if bar[2:] else 1) if bar else None
    with b or nullcontext():
        offered = {"warn": warn, "log": say, "note": note, **vars(args), **given}
        offered.update({"on_start": b.start, "progress": b.to} if b else {})
        return fn(**{k: v for k, v in offered.items() if k in params})


def show(result) -> int:
    """Print a library result's summary() (once in a multi-process run); if its `error` is set, fail after it."""
    if getattr(result, "is_main", True) and (text := result.summary()):
        print(text, end="" if text.endswith("\n") else "\n")
    if getattr(result, "error", None):
        raise WavegenError(result.error)
    return 0


def train(args: argparse.Namespace, kind: str, call: str) -> int:
    """`train` and `train-composer`: the config (defaults, --config, then each --set) shown, or trained on
    by `call`."""
    from wavegen.config import config_text, load_config

    cfg = load_config(args.config, args.set or [], kind=kind)
    if args.show_config:
        return print(config_text(cfg), end="") or 0
    show(result := resolve_name(call)(cfg, args.data, args.out, log=say))
    if result.is_main and getattr(result, "status", "") == "preempted":
        say(f"{args.out}: checkpoint saved; run the same command again to resume")
    return 0


def _number(kind: type, what: str, test: Callable[[float], bool], must: str) -> Callable[[str], float]:
    def parse(s: str):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{s!r} is not {what}") from None
        if not test(v):
            raise argparse.ArgumentTypeError(f"{s} must be {must}")
        return v
    return parse


# every number an option takes is checked here, by its type: finite and in range, or a usage error (exit 2)
positive_int = _number(int, "a whole number", lambda v: v > 0, "positive")
positive_float = _number(float, "a number", lambda v: 0 < v < float("inf"), "a positive number")
non_negative_float = _number(float, "a number", lambda v: 0 <= v < float("inf"), "a finite number, 0 or more")
fraction = _number(float, "a number", lambda v: 0 <= v < 1, "at least 0 and below 1")

# options several commands share
CHECKPOINT = arg("--checkpoint", dest="model", metavar="PATH", help="a shipped model's name, a checkpoint folder or a "
                 "run folder (default: the shipped harpsichord-cpu model)")
DATA = arg("--data", default=DEFAULT_DATA, metavar="DIR", help=f"a dataset from `wavegen data build` (default {DEFAULT_DATA})")
SEED = arg("--seed", type=int, default=0)
TEMPERATURE = arg("--temperature", type=non_negative_float, help="sampling temperature (default: the model's, 1 unless "
                  "its card says otherwise; 0 = greedy)")
MIN_P = arg("--min-p", type=fraction, metavar="P", help="never draw a sample value less likely than P times the most "
            "likely one, in [0, 1) (default: the model's, 0 = off, unless its card says otherwise)")
DENOISE = arg("--denoise", type=non_negative_float, metavar="DB", help="turn what the take plays between the "
              "partials of the sketch's notes down by DB (a post-process; default 10, 0 = the network's take "
              "as it played it)")
SET = arg("--set", action="append", metavar="SECTION.KEY=VALUE", help="override one setting; repeatable")
RUN_DIR = one_of(arg("--out", metavar="RUN_DIR", help="run folder: checkpoints, samples, logs"), arg("--show-config",
                 action="store_true", help="print every setting and its value (after --config, --set) and exit"), required=True)


def warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def say(message: str) -> None:
    """Progress and notices go to standard error; results to standard output."""
    print(message, file=sys.stderr)


def note(message: str) -> None:
    say(f"{PROG}: {message}")
