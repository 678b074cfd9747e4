"""The one exception type for bad input.

A `WavegenError` is the user's problem, not ours: the command line prints its message on one line
and exits with status 2. Its message names the file, says what is wrong and, where it can, what to do.
Anything else that escapes is a bug (exit status 1).
"""


class WavegenError(Exception):
    """Bad input or usage: a file that is missing or malformed, a value out of range."""
