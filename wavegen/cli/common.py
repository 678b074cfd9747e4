"""What every command shares: the registry that puts each command's options beside its body, the
one-line usage errors, number types, shared options, warnings and progress bars."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PROG = "wavegen"
DEFAULT_DATA = "data/build/bach"
Command = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line and exits 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


@dataclass(frozen=True)
class Spec:
    name: str  # "data build" for a subcommand of a group
    help: str
    options: tuple
    run: Command
    description: str | None


COMMANDS: list[Spec] = []  # in the order of `wavegen --help`


def arg(*names: str, **kwargs) -> tuple:
    return names, kwargs


def one_of(*options: tuple, required: bool = False) -> tuple:
    """Options that exclude each other."""
    return ("one_of", required), options


def command(name: str, help: str, *options: tuple, description: str | None = None) -> Callable[[Command], Command]:
    """Register the decorated function as the command `name` with these options (arg, one_of)."""
    def register(run: Command) -> Command:
        COMMANDS.append(Spec(name, help, options, run, description))
        return run
    return register


def add_options(p: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup, options: Sequence[tuple]) -> None:
    for names, kwargs in options:
        if names and names[0] == "one_of":
            add_options(p.add_mutually_exclusive_group(required=names[1]), kwargs)
        else:
            p.add_argument(*names, **kwargs)


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
CHECKPOINT = arg("--checkpoint", metavar="PATH", help="a shipped model's name, a checkpoint folder or a run folder "
                 "(default: the shipped harpsichord-cpu model)")
DATA = arg("--data", default=DEFAULT_DATA, metavar="DIR", help=f"a dataset from `wavegen data build` (default {DEFAULT_DATA})")
SEED = arg("--seed", type=int, default=0)
TEMPERATURE = arg("--temperature", type=non_negative_float, help="sampling temperature (default: the model's, 1 unless its card "
                  "says otherwise; 0 = greedy)")
MIN_P = arg("--min-p", type=fraction, metavar="P", help="never draw a sample value less likely than P times the most "
            "likely one, in [0, 1) (default: the model's, 0 = off, unless its card says otherwise)")
SET = arg("--set", action="append", metavar="SECTION.KEY=VALUE", help="override one setting; repeatable")
RUN_DIR = one_of(arg("--out", metavar="RUN_DIR", help="run folder: checkpoints, samples, logs"), arg("--show-config",
                 action="store_true", help="print every setting and its value (after --config, --set) and exit"), required=True)


def warn(messages: Sequence[str] | str) -> None:
    for m in [messages] if isinstance(messages, str) else messages:
        print(f"{PROG}: warning: {m}", file=sys.stderr)


def say(message: str) -> None:
    """Progress and notices go to standard error; results to standard output."""
    print(message, file=sys.stderr)


class Bar:
    """A progress bar on standard error (off when it is not a terminal), started when the total is known;
    with a sample rate it shows the real-time factor."""

    def __init__(self, desc: str, unit: str, per_step: int = 1):
        self.desc, self.unit, self.per_step, self.bar, self.rate_hz = desc, unit, per_step, None, 0

    def start(self, total: int, rate_hz: int = 0) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total * self.per_step, unit=self.unit, unit_scale=True, disable=None, desc=self.desc)
        self.rate_hz, self.t0 = rate_hz, time.perf_counter()

    def to(self, done: int, total: int | None = None) -> None:
        self.bar.update(done * self.per_step - self.bar.n)
        if self.rate_hz:
            self.bar.set_postfix(realtime=f"{self.bar.n / max(time.perf_counter() - self.t0, 1e-9) / self.rate_hz:.3f}x")

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def dbfs(x: float) -> str:
    import math

    return "-inf dBFS" if x <= 0 else f"{20 * math.log10(x):.1f} dBFS"
