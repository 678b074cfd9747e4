"""`wavegen studio`: the page where a sketch is written, composed, played and heard (docs/studio.md)."""

from wavegen.cli import common as c
from wavegen.cli.common import arg, command, positive_int

command("studio", "a web page to write, compose, play and listen (served on this machine)",
        arg("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"),
        arg("--port", type=int, default=8765, help="port (default 8765)"), c.CHECKPOINT,
        arg("--composer", metavar="NAME|PATH", help="composer model (default: the shipped composer-styles, five "
            "styles to blend)"),
        arg("--work", default="studio", metavar="DIR", help="the server's work folder: listening tests and their "
            "answers (default studio/)"),
        arg("--jobs", type=positive_int, help="generation jobs at once (default: one per core); more wait in a queue"),
        arg("--open", dest="open_browser", action="store_true", help="open the page in the default browser"),
        call="wavegen.studio.server:serve")
