"""`wavegen <command>`: the command line, one module per command; it parses, calls the library, prints.

The top layer: may import anything; nothing imports it.
"""

from wavegen.cli.main import main

__all__ = ["main"]
