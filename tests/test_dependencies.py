"""No dependency that nothing imports: every package pyproject.toml installs is imported by wavegen."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
# distribution name -> the module wavegen imports it as (where the two differ)
IMPORT_NAME = {"pyfluidsynth": "fluidsynth", "mir_eval": "mir_eval", "pretty_midi": "pretty_midi",
               "tensorboard": "torch.utils.tensorboard"}  # torch's SummaryWriter needs the tensorboard package


def imported_modules() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "wavegen").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for a in node.names:
                    parts = a.name.split(".")
                    found.update(".".join(parts[: i + 1]) for i in range(len(parts)))
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                found.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return found


def dependency_names() -> list[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return [re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].strip().lower().replace("-", "_") for d in deps]


def test_every_dependency_is_imported():
    names = dependency_names()
    assert "torch" in names and "numpy" in names
    used = imported_modules()
    unused = [n for n in names if IMPORT_NAME.get(n, n) not in used]
    assert not unused, f"pyproject.toml installs packages nothing in wavegen imports: {unused}"


def test_the_check_sees_an_unused_name():
    assert "torchaudio" not in imported_modules()
    assert "torch.utils.tensorboard" in imported_modules()
