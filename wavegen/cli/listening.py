"""`wavegen listening-test make | summary`: a listening test from an evaluation's clips, or its answers summed up."""

import argparse

from wavegen.cli.common import arg, command


def seconds_or_all(s: str) -> float | None:
    """--seconds: a positive number of seconds, or `all` for the whole clips."""
    if s.lower() in ("all", "whole"):
        return None
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a number (or all)") from None
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"{s} must be a positive number (or all)")
    return v


command("listening-test make", "pairs of clips from an evaluation, to tell the WaveNet from the rendering by ear",
        arg("evaluation", metavar="EVALUATION", help="the REPORT.json of `wavegen evaluate`, or its folder"),
        arg("--out", metavar="DIR", help="the test folder, new or empty (default studio/listening/<the evaluation's "
            "folder name>, where `wavegen studio` finds it)"),
        arg("--seconds", type=seconds_or_all, default=8.0, metavar="S", help="the first S seconds of each clip "
            "(default 8; all: whole clips)"),
        arg("--name", help="the test's name on the page (default: the folder's)"),
        call="wavegen.studio.listening:make_test",
        description="Copy each pair of clips of an evaluation (the SoundFont rendering and the WaveNet's take of "
        "the same notes) into a test folder under names that do not say which is which, cut to the same length and "
        "at the same RMS. The studio's /listen page plays them to listeners.")
command("listening-test summary", "how often listeners told the WaveNet from the rendering, with its interval",
        arg("test_dir", metavar="DIR", help="a test folder from `wavegen listening-test make`"),
        arg("--json", dest="as_json", action="store_true", help="print the summary as JSON"),
        call="wavegen.studio.listening:summary")
