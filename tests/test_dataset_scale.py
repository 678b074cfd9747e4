"""Datasets at scale: the cached index, items read one at a time, and starts that never read every item."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from wavegen.config import load_config
from wavegen.data import dataset
from wavegen.errors import WavegenError
from wavegen.nn import heldout
from wavegen.train.wavenet import WaveNetTask


def copy_of(ds_dir, tmp_path):
    out = tmp_path / "ds"
    shutil.copytree(ds_dir, out)
    (out / dataset.INDEX).unlink(missing_ok=True)
    return out


def entries(root) -> list[dict]:
    """The manifest's items, read with json (the reference the index must agree with)."""
    return json.loads((root / dataset.MANIFEST).read_text())["items"]


def rewrite(root, manifest: dict, **dump) -> None:
    """Write the manifest anew and rename it into place, as `wavegen data build` does."""
    tmp = root / "manifest.json.new"
    tmp.write_text(json.dumps(manifest, indent=1, **dump) + "\n", encoding="utf-8")
    os.replace(tmp, root / dataset.MANIFEST)


def many_items(ds_dir, tmp_path, copies: int):
    """The tiny dataset with each item `copies` times under new ids (hard links to its files)."""
    root = copy_of(ds_dir, tmp_path)
    manifest = json.loads((root / dataset.MANIFEST).read_text())
    items = []
    for e in manifest["items"]:
        for c in range(copies):
            new = {**e, "id": f"{e['id']}-{c}", "piece": f"{e['piece']}-{c}"}
            for sub, ext in (("text", "txt"), ("audio", "npy")):
                os.link(root / sub / f"{e['id']}.{ext}", root / sub / f"{new['id']}.{ext}")
            items.append(new)
    manifest["items"] = items
    rewrite(root, manifest)
    return root


def test_the_index_is_cached_and_agrees_with_the_manifest(tiny_dataset, tmp_path, monkeypatch):
    root = copy_of(tiny_dataset, tmp_path)
    want = entries(root)
    first = dataset.load(root)
    assert (root / dataset.INDEX).is_file()
    assert [it.id for it in first.items()] == [e["id"] for e in want]
    monkeypatch.setattr(dataset, "_index", lambda *a: pytest.fail("the manifest was indexed again"))
    again = dataset.load(root)  # from the cache
    assert again.items() == [dataset.Item(**e) for e in want]
    for split in ("train", "valid", "test"):
        assert [it.id for it in again.items(split)] == [e["id"] for e in want if e["split"] == split]
    assert again.styles() == sorted({e["style"] for e in want})
    assert again.provenance()["items"] == len(want) and again.provenance()["hours"] == round(
        sum(e["seconds"] for e in want) / 3600, 3)


def test_select_filters_by_split_style_transpose_and_length(tiny_dataset, tmp_path):
    root = copy_of(tiny_dataset, tmp_path)
    manifest = json.loads((root / dataset.MANIFEST).read_text())
    for i, e in enumerate(manifest["items"]):
        e["style"], e["transpose"] = ("bach", "essen")[i % 2], i % 3 - 1
    manifest["items"][0]["n_samples"] = 10
    rewrite(root, manifest)
    ds, want = dataset.load(root), manifest["items"]
    got = ds.select("train", style="essen", transpose=0, min_samples=100)
    assert got.tolist() == [i for i, e in enumerate(want) if e["split"] == "train" and e["style"] == "essen"
                            and e["transpose"] == 0 and e["n_samples"] > 100]
    assert ds.select(min_samples=100).tolist() == list(range(1, len(want)))
    assert ds.select("no such split").tolist() == [] and ds.select(style="no such style").tolist() == []


def test_a_rebuilt_manifest_gets_a_new_index(tiny_dataset, tmp_path):
    root = copy_of(tiny_dataset, tmp_path)
    dataset.load(root)
    manifest = json.loads((root / dataset.MANIFEST).read_text())
    train = next(i for i, e in enumerate(manifest["items"]) if e["split"] == "train")
    manifest["items"][train]["split"] = "valid"  # as long as "train": the manifest keeps its size
    rewrite(root, manifest)
    ds = dataset.load(root)
    assert ds.item(train).split == "valid" and train in ds.select("valid")


def test_a_broken_index_is_made_again_and_an_unwritable_one_is_not_needed(tiny_dataset, tmp_path, monkeypatch):
    root = copy_of(tiny_dataset, tmp_path)
    want = [e["id"] for e in entries(root)]
    (root / dataset.INDEX).write_bytes(b"PK\x03\x04 half a zip")
    assert [it.id for it in dataset.load(root).items()] == want
    assert np.load(root / dataset.INDEX)["start"].shape == (len(want),)  # written again, whole
    (root / dataset.INDEX).unlink()

    def read_only(path):
        raise OSError(30, "Read-only file system", str(path))
    monkeypatch.setattr(dataset, "atomic_path", read_only)
    assert [it.id for it in dataset.load(root).items()] == want
    assert not (root / dataset.INDEX).exists()


def test_items_are_read_at_their_byte_offsets_in_a_manifest_that_is_not_ascii(tiny_dataset, tmp_path):
    root = copy_of(tiny_dataset, tmp_path)
    manifest = json.loads((root / dataset.MANIFEST).read_text())
    for i, e in enumerate(manifest["items"]):
        e["licence"] = "domaine public, édition de Clara Schumann" + "é" * i
    rewrite(root, manifest, ensure_ascii=False)
    assert not (root / dataset.MANIFEST).read_bytes().isascii()
    ds = dataset.load(root)
    assert [it.licence for it in ds.items()] == [e["licence"] for e in manifest["items"]]


def test_a_corrupt_or_older_manifest_is_one_line(tiny_dataset, tmp_path):
    root = copy_of(tiny_dataset, tmp_path)
    text = (root / dataset.MANIFEST).read_text()
    (root / dataset.MANIFEST).write_text(text[: len(text) // 2])
    with pytest.raises(WavegenError, match="corrupt manifest"):
        dataset.load(root)
    manifest = json.loads(text)
    manifest["dataset_version"] = 0
    for e in manifest["items"]:
        del e["n_samples"]  # an older layout: a wrong version, not a corrupt file
    rewrite(root, manifest)
    with pytest.raises(WavegenError, match="dataset version 0 is not"):
        dataset.load(root)


def test_a_dataset_pickled_for_a_worker_reads_the_same_items_and_refuses_a_rebuilt_manifest(tiny_dataset, tmp_path):
    root = copy_of(tiny_dataset, tmp_path)
    ds = dataset.load(root)
    assert pickle.loads(pickle.dumps(ds)).items() == ds.items()
    manifest = json.loads((root / dataset.MANIFEST).read_text())
    manifest["items"].reverse()
    rewrite(root, manifest)
    assert ds.items()[0].id == manifest["items"][-1]["id"]  # the open dataset keeps reading what it loaded
    with pytest.raises(WavegenError, match="changed while it was being read"):
        pickle.loads(pickle.dumps(ds))


def test_training_and_evaluation_start_without_reading_every_item(tiny_dataset, tmp_path, monkeypatch):
    root = many_items(tiny_dataset, tmp_path, copies=60)  # 300 items
    n_items = len(entries(root))
    cfg = load_config(Path(__file__).parent.parent / "configs" / "tiny.toml")
    ds = dataset.load(root)
    read: list[int] = []
    item, text = dataset.Dataset.item, dataset.Dataset.text
    monkeypatch.setattr(dataset.Dataset, "items", lambda *a: pytest.fail("every item was read"))
    monkeypatch.setattr(dataset.Dataset, "item", lambda self, i: read.append(int(i)) or item(self, i))
    texts: list[str] = []
    monkeypatch.setattr(dataset.Dataset, "text", lambda self, it: texts.append(it.id) or text(self, it))
    task = WaveNetTask(cfg, ds)
    task.meta()
    crops = task.train_set()
    for i in range(10):
        crops[i]
    assert task.prepare_validation() is None
    held = heldout.HeldOut.of(heldout.crops(ds, "test", task.cfg.model, cfg.data.crop_samples), 4)
    assert held.true["inputs"].shape[0] == 4
    bound = 10 + 2 * 2 * cfg.data.valid_crops + 2 * 4  # crops, validation (true and shuffled), test crops
    assert len(set(read)) <= bound < n_items // 4 and len(texts) <= bound
