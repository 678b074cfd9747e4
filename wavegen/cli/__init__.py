"""`wavegen <command>`: the command line, the top layer (it may import anything; nothing imports it)."""

from wavegen.cli.main import main

__all__ = ["main"]
