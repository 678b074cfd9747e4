"""The hand-made sketch suite in data/sketches/: every file is valid 88-key text in the shipped model's
tick, a few seconds long, made by scripts/make_sketches.py and listed in its README; together they reach
A0 and C8 and sound one to eight keys at once."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from wavegen.notes import text as T

ROOT = Path(__file__).resolve().parent.parent
SKETCHES = ROOT / "data" / "sketches"
FILES = sorted(SKETCHES.glob("*.txt"))


def make_sketches():
    spec = importlib.util.spec_from_file_location("make_sketches", ROOT / "scripts" / "make_sketches.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_suite_is_there():
    assert len(FILES) >= 12


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_sketch_is_valid_text_of_a_few_seconds_in_the_shipped_tick(path):
    shipped = json.loads((ROOT / "wavegen" / "models" / "harpsichord-cpu" / "config.json").read_text())
    kt = T.read_file(path)
    assert kt.tick_ms == shipped["tick_ms"] == 50
    assert 2.0 <= kt.duration_s <= 10.0 and kt.notes()
    assert kt.meta.get("title") == path.stem
    assert not kt.roll[-1].any()  # ends with a rest: the last note is released inside the file


def test_the_suite_covers_the_keyboard_and_one_to_eight_keys_at_once():
    rolls = [T.read_file(p).roll for p in FILES]
    keys = np.logical_or.reduce([r.any(axis=0) for r in rolls])
    assert keys[0] and keys[-1]  # A0 and C8
    assert keys.all()  # and every key between
    at_once = set().union(*({int(n) for n in r.sum(axis=1)} for r in rolls))
    assert set(range(1, 9)) <= at_once
    # silences: some sketch rests at least a second between notes
    assert any(max(len(run) for run in "".join("x" if t.any() else " " for t in r).strip().split("x")) >= 20
               for r in rolls)


def test_the_files_are_what_the_generator_makes_and_the_readme_lists_them():
    made = make_sketches().texts()
    assert sorted(made) == [p.name for p in FILES]
    for p in FILES:
        assert p.read_text() == made[p.name], f"{p.name}: rerun scripts/make_sketches.py"
    readme = (SKETCHES / "README.md").read_text()
    listed = {line.split("`")[1] for line in readme.splitlines() if line.startswith("| `")}
    assert listed == set(made)
