"""The corpora of `wavegen data build --corpus NAME` (wavegen/data/corpora.py): each yields pieces that
become valid 88-key text with its style and licence, builds into a dataset whose manifest names them,
split by piece; bounded collections keep a stable spread; `random` is deterministic and covers the keys."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from wavegen.data import build, corpora, dataset
from wavegen.errors import WavegenError
from wavegen.notes import text as T

NAMES = list(corpora.CORPORA)


def quick(name: str) -> corpora.Source:
    """A piece of the corpus that is quick to convert: the one in the smallest file."""
    return min(corpora.CORPORA[name].list_all(),
               key=lambda s: (0 if s.kind == "random" else Path(s.path).stat().st_size, s.piece))


def test_the_corpora_and_their_names():
    assert set(NAMES) == {"bach", "essen", "oneills", "ryans", "palestrina", "keyboard", "chamber", "random"}
    assert corpora.CORPUS_NAMES == (*NAMES, "all")
    with pytest.raises(WavegenError, match="no such corpus; choose one of bach"):
        corpora.corpus_pieces("mozart")


@pytest.mark.parametrize("name", NAMES)
def test_every_corpus_yields_pieces_that_become_valid_text_with_style_and_licence(name):
    c = corpora.CORPORA[name]
    pieces = c.list_all()
    assert len(pieces) >= 10 and len({s.piece for s in pieces}) == len(pieces)  # names unique
    assert all(s.style == name and s.licence == c.licence and s.licence for s in pieces)
    src = quick(name)
    kt = build.source_text(src)
    assert kt.meta["style"] == name and kt.n_ticks > 20 and kt.notes()
    assert T.parse(T.write(kt)) == kt  # valid text, read back the same
    assert kt.duration_s < 600


def test_each_tune_of_a_file_of_many_is_its_own_piece():
    tunes = [s for s in corpora.CORPORA["essen"].list_all() if Path(s.path).name == "erk5.abc"]
    assert len(tunes) == len(corpora.tune_numbers(Path(tunes[0].path))) == 27
    a, b = (build.source_text(s) for s in tunes[:2])
    assert a.roll.shape != b.roll.shape or (a.roll != b.roll).any()
    assert tunes[0].origin.endswith("erk5.abc#X1")
    # O'Neill's numbers its tunes across files; a tune in two files (two transcriptions) is taken once
    oneills = corpora.CORPORA["oneills"].list_all()
    assert "oneills-0626" in {s.piece for s in oneills} and len(oneills) == 1838


def test_scores_music21_stumbles_on_still_convert():
    # an ABC tune that alternates 4/2 and 4/4 (one TimeSignature object in many measures)
    tune = next(s for s in corpora.CORPORA["essen"].list_all() if s.origin.endswith("altdeu10.abc#X216"))
    assert build.source_text(tune).notes()
    # repeats music21 cannot expand: played once, as written, with a warning
    mazurka = next(s for s in corpora.CORPORA["keyboard"].list_all() if s.piece == "chopin-mazurka06-2")
    notes, warnings = build._source_notes(mazurka, corpora.source_bytes(mazurka), build.BuildSettings())
    assert len(notes) > 500 and any("repeats not expanded" in w for w in warnings)


def test_big_collections_are_bounded_by_a_stable_spread():
    for name, bound in (("essen", 500), ("oneills", 200), ("ryans", 300), ("palestrina", 100)):
        assert corpora.CORPORA[name].bound == bound
        kept = corpora.corpus_pieces(name)
        assert len(kept) == bound < len(corpora.CORPORA[name].list_all())
    essen = corpora.corpus_pieces("essen")
    assert len({Path(s.path).name for s in essen}) >= 20  # drawn from every book, not the first one
    small, larger = corpora.corpus_pieces("essen", 10), corpora.corpus_pieces("essen", 20)
    assert {s.piece for s in small} < {s.piece for s in larger}
    assert len(corpora.corpus_pieces("essen", 1000)) == 1000  # a limit replaces the bound
    # the kept pieces are not the test pieces: the draw is not the split's hash
    tests = sum(build.split_of(s.piece)[0] == "test" for s in essen)
    assert tests < 0.15 * len(essen)
    assert len(corpora.corpus_pieces("bach")) == len(corpora.CORPORA["bach"].list_all())  # unbounded
    both = build.select_sources(corpus="all", limit=1)
    assert sorted(s.style for s in both) == sorted(NAMES)


def _random_text(i: int) -> T.KeyText:
    return T.from_notes(corpora.random_sketch_notes(i), 50)


def test_random_sketches_are_deterministic_and_cover_the_keyboard():
    assert corpora.random_sketch_midi(3) == corpora.random_sketch_midi(3)
    assert corpora.random_sketch_midi(3) != corpora.random_sketch_midi(4)
    # pinned: the same sketch on every machine and Python version (else caches and splits move)
    first = T.write(_random_text(0))
    assert hashlib.sha256(first.encode()).hexdigest()[:16] == "1b212fb536f2873a"
    sources = corpora.CORPORA["random"].list_all()
    assert len(sources) == corpora.RANDOM_PIECES == 400
    assert [s.piece for s in sources[:2]] == ["random-000", "random-001"]  # names, hence splits, never move
    texts = [build.source_text(s) for s in sources[:100]]  # through the MIDI reader, as the build reads them
    keys = set().union(*(set(kt.roll.any(axis=0).nonzero()[0]) for kt in texts))
    assert keys == set(range(88))  # every key, A0 to C8
    at_once = {int(n) for kt in texts for n in kt.roll.sum(axis=1)}
    assert set(range(0, 9)) <= at_once  # rests, and one to eight keys sounding at once
    seconds = [kt.duration_s for kt in texts]
    assert 1 <= min(seconds) and max(seconds) <= 35 and max(seconds) - min(seconds) > 15  # random lengths


def test_a_tiny_build_of_every_corpus_has_their_styles_and_licences_split_by_piece(tmp_path):
    sources = [quick(name) for name in NAMES]
    res = build.build(sources, tmp_path / "ds", sample_rate_hz=4000, transpositions=(0, 1), jobs=1)
    assert not res.skipped
    m = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert set(m["styles"]) == set(NAMES)
    for name in NAMES:
        assert m["styles"][name]["pieces"] == 1 and m["styles"][name]["licences"] == [corpora.CORPORA[name].licence]
    ds = dataset.load(tmp_path / "ds")
    items = ds.items()
    assert {it.style for it in items} == set(NAMES)
    for it in items:
        assert ds.text(it).meta["style"] == it.style and it.licence == corpora.CORPORA[it.style].licence
    # every transposition of a piece lies in its piece's split
    splits = build.assign_splits([s.piece for s in sources])
    assert len(items) > len(sources)  # the transpositions are there
    assert all(it.split == splits[it.piece] for it in items)
    assert {it.split for it in items} == {"train", "valid", "test"}
    tune = next(it for it in items if it.style == "essen")
    assert "#X" in tune.source
    assert "styles: bach 1 pieces" in dataset.info_text(dataset.info(ds), str)


def test_a_list_of_corpora_is_each_one_in_turn():
    listed = corpora.corpus_pieces("bach,oneills", 3)
    assert [s.style for s in listed] == ["bach"] * 3 + ["oneills"] * 3
    assert [s.piece for s in listed[:3]] == [s.piece for s in corpora.corpus_pieces("bach", 3)]
    for bad in ("bach,all", "bach,bach", "bach,", "bach,jazz"):
        with pytest.raises(WavegenError, match="--corpus"):
            corpora.corpus_pieces(bad, 3)
