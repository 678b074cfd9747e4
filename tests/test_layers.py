"""The package's imports point one way: each layer imports only the layers below it (and itself).

    foundation (errors, files, audio, config, progress, machine) < notes < data < nn < synth < compose
    < train | evaluate | studio < cli

train, evaluate and studio are siblings: none imports another. Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "wavegen"
RANK = {"foundation": 0, "notes": 1, "data": 2, "nn": 3, "synth": 4, "compose": 5, "train": 6, "evaluate": 6,
        "studio": 6, "cli": 7, "__main__": 8}
FOUNDATION = {"__init__", "errors", "files", "audio", "config", "progress", "machine"}


def group_of(module: str) -> str:
    """'wavegen.nn.model' -> 'nn'; 'wavegen.audio' -> 'foundation'; 'wavegen' -> 'foundation'."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in FOUNDATION:
        return "foundation"
    if parts[1] not in RANK:
        raise AssertionError(f"{module}: in no layer; add its package to RANK in tests/test_layers.py")
    return parts[1]


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every wavegen module the file imports, at any depth of the code."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "wavegen"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "wavegen":
            if node.module == "wavegen":  # from wavegen import notes -> the subpackage itself
                found += [(node.lineno, f"wavegen.{a.name}") for a in node.names if a.name in RANK]
            found.append((node.lineno, node.module))
    return found


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_layer():
    assert len(MODULES) > 20
    for path in MODULES:
        group_of(module_name(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path):
    me = group_of(module_name(path))
    for line, target in imports_of(path):
        other = group_of(target)
        if other == me:
            continue
        assert RANK[other] < RANK[me], (
            f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}: layer {other!r} is not below {me!r}")


def test_the_checker_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from wavegen.cli import main\n    import wavegen.train.loop\n")
    assert [m for _, m in imports_of(bad)] == ["wavegen.cli", "wavegen.train.loop"]
    assert RANK[group_of("wavegen.cli")] > RANK[group_of("wavegen.nn.model")]
    assert group_of("wavegen.audio") == "foundation" and group_of("wavegen") == "foundation"
