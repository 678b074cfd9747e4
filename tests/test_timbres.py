"""Several harpsichords: a dataset rendered with more than one SoundFont, a model conditioned on the
timbre, trained, started from a model of one timbre, and asked for one at generation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_notes_midi

from wavegen.config import load_config
from wavegen.data import build, dataset
from wavegen.data.crops import CropDataset, validation_batch
from wavegen.errors import WavegenError
from wavegen.nn import checkpoint
from wavegen.notes.render import TIMBRES, resolve_timbre
from wavegen.notes.text import Note
from wavegen.synth import takes
from wavegen.train.wavenet import train_wavenet

TINY = Path(__file__).parent.parent / "configs" / "tiny.toml"
TWO = ("fluidr3", "timgm6mb")


def pieces(folder: Path, n: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_notes_midi(folder / f"piece{i}.mid",
                         [Note(50 + (i * 3 + j * 5) % 20, j * 0.25, j * 0.25 + 0.4) for j in range(8)])
    return folder


@pytest.fixture(scope="module")
def two_timbres(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("timbres")
    build.build(build.midi_dir_sources(pieces(root / "midi")), root / "ds", soundfont=list(TWO), jobs=1)
    return root / "ds"


def test_names_files_and_name_equals_file_resolve(tmp_path):
    assert resolve_timbre("timgm6mb") == ("timgm6mb", TIMBRES["timgm6mb"]())
    copy = tmp_path / "My Harpsichord.sf2"
    shutil.copy(TIMBRES["timgm6mb"](), copy)
    assert resolve_timbre(str(copy)) == ("my-harpsichord", copy)
    assert resolve_timbre(f"virginal={copy}") == ("virginal", copy)
    with pytest.raises(WavegenError, match="neither a timbre .*fluidr3, musescore, musescore-coupled, timgm6mb"):
        resolve_timbre("harpsichrod")
    with pytest.raises(WavegenError, match="a second timbre called 'timgm6mb'"):
        build.resolve_timbres(["timgm6mb", str(TIMBRES["timgm6mb"]())])
    with pytest.raises(WavegenError, match="neither a timbre"):  # refused before the folder is made
        build.build(build.midi_dir_sources(pieces(tmp_path / "midi", 1)), tmp_path / "ds", soundfont=["nope"])
    assert not (tmp_path / "ds").exists()


def test_every_piece_is_rendered_in_every_timbre_sharing_its_text(two_timbres):
    ds = dataset.load(two_timbres)
    assert ds.timbres() == list(TWO)
    assert sorted(ds.manifest["timbres"]) == list(TWO)
    items = ds.items()
    assert len(items) == 8 and {it.id for it in items} == {f"piece{i}@{t}" for i in range(4) for t in TWO}
    by_piece: dict[str, list] = {}
    for it in items:
        by_piece.setdefault(it.piece, []).append(it)
    for piece, its in by_piece.items():
        assert [it.timbre for it in its] == list(TWO)
        assert {it.text_path for it in its} == {f"text/{piece}.txt"} and len({it.split for it in its}) == 1
        a, b = (np.asarray(ds.audio(it), dtype=np.float64) for it in its)
        n = min(len(a), len(b))
        assert np.abs(a[:n] - b[:n]).mean() > 0.1 * np.abs(a[:n]).mean()  # two instruments, not one
    assert len(list((two_timbres / "text").iterdir())) == 4
    assert ds.select(timbre="timgm6mb").tolist() == [i for i, it in enumerate(items) if it.timbre == "timgm6mb"]
    info = dataset.info(ds)
    assert set(info["timbres"]) == set(TWO) and info["timbres"]["fluidr3"]["items"] == 4
    assert "timbres: fluidr3 4 items" in dataset.info_text(info, str)


def test_a_rebuild_renders_only_a_new_timbre(tmp_path):
    src = pieces(tmp_path / "midi", 3)
    first = build.build(build.midi_dir_sources(src), tmp_path / "ds", jobs=1)  # one timbre: plain ids
    assert first.built == 3 and {it["id"] for it in first.manifest["items"]} == {"piece0", "piece1", "piece2"}
    assert {it["timbre"] for it in first.manifest["items"]} == {resolve_timbre(None)[0]}
    for entry in (tmp_path / "ds" / "items").iterdir():  # as a build from before timbres wrote them
        entry.write_text(json.dumps({k: v for k, v in json.loads(entry.read_text()).items() if k != "timbre"}))
    before = build.build(build.midi_dir_sources(src), tmp_path / "ds", jobs=1)
    assert (before.built, before.reused) == (0, 3)
    assert {it["timbre"] for it in before.manifest["items"]} == {resolve_timbre(None)[0]}
    again = build.build(build.midi_dir_sources(src), tmp_path / "ds", soundfont=[None, "timgm6mb"], jobs=1)
    assert (again.built, again.reused) == (6, 0)  # new ids, but the texts came from the first build
    more = build.build(build.midi_dir_sources(src), tmp_path / "ds", jobs=1,
                       soundfont=[None, "timgm6mb", f"copy={TIMBRES['timgm6mb']()}"])
    assert (more.built, more.reused) == (3, 6)


def test_crops_carry_the_timbre_of_their_audio(two_timbres):
    ds = dataset.load(two_timbres)
    crops = CropDataset(ds, "train", crop_samples=800, margin_ticks=2, output="mulaw", timbres=list(TWO))
    want = {it.id: list(TWO).index(it.timbre) for it in crops.items}
    for index in range(20):
        k, _ = crops.locate(index)
        assert int(crops[index]["timbre"]) == want[crops.items[k].id]
    true, shuffled = validation_batch(crops, 6), validation_batch(crops, 6, shuffled=True)
    assert true["timbre"].tolist() == shuffled["timbre"].tolist()  # other notes, the same instrument
    assert set(true["timbre"].tolist()) == {0, 1}


@pytest.fixture(scope="module")
def timbre_run(two_timbres, tmp_path_factory) -> Path:
    cfg = load_config(TINY, ["model.n_timbres=2", "train.steps=10", "train.compile=false"], kind="wavenet")
    out = tmp_path_factory.mktemp("run") / "run"
    train_wavenet(cfg, two_timbres, out, show_progress=False)
    return out


def test_a_timbre_model_records_its_timbres_and_plays_each(timbre_run, tmp_path):
    loaded = checkpoint.load(str(timbre_run))
    assert loaded.timbres == list(TWO) and loaded.meta["dataset"]["timbres"].keys() == set(TWO)
    sketch = tmp_path / "s.txt"
    sketch.write_text("HLO HLO  H H \n")
    out = {}
    for t in TWO:
        takes.generate_takes(tmp_path / f"{t}.wav", model=str(timbre_run), sketch=str(sketch), timbre=t,
                             seed=3, seconds=0.3)
        import soundfile

        out[t] = soundfile.read(tmp_path / f"{t}.wav")[0]
    assert not np.array_equal(out["fluidr3"], out["timgm6mb"])  # same seed, other timbre, other take
    with pytest.raises(WavegenError, match="plays the timbres: fluidr3, timgm6mb"):
        takes.generate_takes(tmp_path / "x.wav", model=str(timbre_run), sketch=str(sketch), timbre="musescore")


def test_a_model_of_one_timbre_refuses_timbre(tiny_dataset, tmp_path):
    cfg = load_config(TINY, ["train.steps=2", "train.compile=false", "train.eval_every=100"], kind="wavenet")
    train_wavenet(cfg, tiny_dataset, tmp_path / "one", show_progress=False)
    with pytest.raises(WavegenError, match="learned one harpsichord .*leave --timbre out"):
        takes.generate_takes(tmp_path / "x.wav", model=str(tmp_path / "one"), seconds=0.1, timbre="fluidr3")


def test_a_run_with_timbres_starts_from_a_model_of_one_with_silent_timbre_embeddings(two_timbres, tmp_path):
    one = load_config(TINY, ["train.steps=2", "train.compile=false", "train.eval_every=100"], kind="wavenet")
    train_wavenet(one, two_timbres, tmp_path / "one", show_progress=False)
    source = checkpoint.load(str(tmp_path / "one")).model.state_dict()
    cfg = load_config(TINY, ["model.n_timbres=2", "train.steps=1", "train.lr=1e-12", "train.compile=false",
                             "train.eval_every=100", f"train.init={tmp_path / 'one'}"], kind="wavenet")
    train_wavenet(cfg, two_timbres, tmp_path / "two", show_progress=False)
    started = checkpoint.load(str(tmp_path / "two")).model.state_dict()
    timbre_keys = [k for k in started if k.endswith(".timbre.weight")]
    assert timbre_keys and all(k not in source for k in timbre_keys)
    for k in timbre_keys:
        assert started[k].abs().max() < 1e-9  # zero at the start, and a tiny lr keeps it there ...
    for k, v in source.items():
        torch.testing.assert_close(started[k], v, rtol=0, atol=1e-6)  # ... and the rest is the source
    record = json.loads((tmp_path / "two" / "config.json").read_text())
    assert record["config"]["model"]["n_timbres"] == 2


def test_a_bank_after_hash_picks_another_harpsichord_of_the_same_file(tmp_path):
    from wavegen.notes.render import render_notes, soundfont_digest, split_bank

    assert split_bank("/x/MuseScore_General.sf3#8") == (Path("/x/MuseScore_General.sf3"), 8)
    odd = tmp_path / "a#1"  # a file whose name has a '#': itself
    odd.write_bytes(b"")
    assert split_bank(odd) == (odd, 0) and split_bank("plain.sf2") == (Path("plain.sf2"), 0)
    name, coupled = resolve_timbre("musescore-coupled")
    if not split_bank(coupled)[0].is_file():
        pytest.skip("MuseScore_General.sf3 is not installed")
    assert name == "musescore-coupled" and str(coupled).endswith(".sf3#8")
    plain = resolve_timbre("musescore")[1]
    assert soundfont_digest(coupled) != soundfont_digest(plain)  # another cache key
    notes = [Note(60, 0.0, 0.4), Note(64, 0.2, 0.6)]
    a, b = (render_notes(notes, soundfont=sf).audio for sf in (plain, coupled))
    assert np.abs(a - b).max() > 0.01
    with pytest.raises(WavegenError, match="no harpsichord .* in bank 99"):
        render_notes(notes, soundfont=f"{split_bank(plain)[0]}#99")


def test_evaluation_asks_a_timbre_model_for_the_harpsichord_of_the_dataset(timbre_run, two_timbres, tmp_path):
    from wavegen.evaluate.report import pick_timbre

    loaded = checkpoint.load(str(timbre_run))
    build.build(build.midi_dir_sources(pieces(tmp_path / "midi", 3)), tmp_path / "one", soundfont="timgm6mb", jobs=1)
    timbre, soundfont = pick_timbre(loaded, dataset.load(tmp_path / "one"), None)
    assert (timbre, soundfont) == ("timgm6mb", str(TIMBRES["timgm6mb"]()))
    assert pick_timbre(loaded, dataset.load(two_timbres), None)[0] == "fluidr3"  # the model's first
    assert pick_timbre(loaded, dataset.load(two_timbres), "timgm6mb")[0] == "timgm6mb"
    with pytest.raises(WavegenError, match="has the timbres fluidr3, timgm6mb"):
        pick_timbre(loaded, dataset.load(two_timbres), "musescore")
