"""`wavegen <command>`: the parser of every command and the one place errors become exit statuses: 0 on
success, 2 for bad input or usage (one line on stderr), 1 for an internal error."""

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from wavegen import __version__
from wavegen.cli import compose, data, listening, notes, studio, wavenet  # noqa: F401  (each registers its commands)
from wavegen.cli.common import COMMANDS, PROG, Parser, add_options
from wavegen.errors import WavegenError
from wavegen.files import os_error_line

GROUPS = {"data": "build or inspect a dataset of aligned text and audio",
          "listening-test": "build a listening test from an evaluation, or sum up its answers"}


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="wavegen: harpsichord music from the 88-key text format.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    p.add_argument("--traceback", action="store_true", help="on an internal error, print the traceback")
    subs = {"": p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)}
    for full_name, help, options, description, _, run in COMMANDS:
        group, _, name = full_name.rpartition(" ")
        if group not in subs:
            gp = subs[""].add_parser(group, help=GROUPS[group], description=GROUPS[group])
            subs[group] = gp.add_subparsers(dest=f"{group}_command", metavar="SUBCOMMAND", parser_class=Parser,
                                            required=True)
        sp = subs[group].add_parser(name, help=help, description=description or help)
        add_options(sp, options)
        sp.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        sp.set_defaults(func=run)
    return p


def _join_negative_values(argv: list[str], options: Sequence[str] = ("--transpose",)) -> list[str]:
    """`--transpose -3..3` -> `--transpose=-3..3`: argparse would take '-3..3' for an option."""
    out: list[str] = []
    for a in argv:
        if out and out[-1] in options and a.startswith("-"):
            out[-1] = f"{out[-1]}={a}"
        else:
            out.append(a)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(_join_negative_values(list(sys.argv[1:] if argv is None else argv)))
    except SystemExit as e:  # --help, --version, usage errors
        return int(e.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, so that a reader gone away is the BrokenPipeError below, not noise at exit
        return code
    except BrokenPipeError:  # `| head`: the reader has what it wanted; end quietly, as a writer killed by SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is still buffered goes nowhere
        return 141
    except (WavegenError, OSError) as e:  # bad input, a file the system would not read or write, a full disk
        if (line := str(e) if isinstance(e, WavegenError) else os_error_line(e)) is None:
            raise  # any other OSError is ours
        print(f"{PROG}: error: {line}", file=sys.stderr)
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
