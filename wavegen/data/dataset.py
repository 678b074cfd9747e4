"""Reading a built dataset: its manifest, items, splits, memory-mapped audio and samples per tick.

A dataset folder holds::

    manifest.json          settings, one entry per piece and transposition, the skipped files
    text/<id>.txt          the 88-key text (the audio is rendered from it, so notes and sound align)
    audio/<id>.npy         int16 mono audio, read back through a memory map (several timbres: an item
                           <id>@<timbre> per SoundFont, each with its audio, all sharing text/<id>.txt)
    velocity/<id>.npy      (recordings only) uint8 (n_ticks, 88): the MIDI velocity sounding per tick and key
    items/<id>.json        one item's entry and cache keys, written when its files are complete
    index.npz              a cache: the items as columns (`Index`), made from the manifest on first load

Sample i of an item's audio lies in tick i // samples_per_tick of its text. Training and evaluation
read datasets through this module alone: it imports neither the renderer, the MIDI reader nor music21
(`wavegen.data.build` makes datasets).

Nothing here reads a whole dataset unless asked to (`Dataset.items()`, `info`): `load` reads the index
(tens of bytes per item), training and evaluation choose items by its columns (`Dataset.select`), an
item's entry is parsed from the manifest when it is used (`Dataset.item`, `Items`), its text when a crop
needs it and its audio through a memory map. Start-up time and memory stay flat as a dataset grows
(`scripts/bench_data_scale.py`, BENCHMARKS.md).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from wavegen.audio import read_pcm_npy
from wavegen.errors import WavegenError
from wavegen.files import atomic_path
from wavegen.notes import text as T

MANIFEST = "manifest.json"
DATASET_VERSION = 1
SPLITS = ("train", "valid", "test")
INDEX = "index.npz"  # the items as columns, cached beside the manifest (see `Index`)
INDEX_VERSION = 2
ITEM_CACHE = 256  # parsed items an `Items` keeps (the most recently read)

def samples_per_tick(sample_rate_hz: int, tick_ms: float) -> int:
    """Whole samples in one tick, or a WavegenError: the text and the audio must align exactly."""
    spt = Fraction(sample_rate_hz) * Fraction(str(tick_ms)) / 1000
    if spt.denominator != 1 or spt <= 0:
        raise WavegenError(
            f"{sample_rate_hz} Hz with {tick_ms} ms ticks gives {float(spt):g} samples per tick; "
            "choose a tick length that holds a whole number of samples"
        )
    return int(spt)

@dataclass
class Item:
    """One built (text, audio) pair: a piece at one transposition, in one timbre."""

    id: str
    piece: str
    transpose: int
    split: str
    source: str
    licence: str
    style: str
    n_ticks: int
    n_samples: int
    seconds: float
    clipped: int
    peak: float
    lowest_pitch: int
    highest_pitch: int
    keys: str  # the characters of the keys this item uses, in pitch order
    text_key: str = ""
    audio_key: str = ""
    warnings: list[str] = field(default_factory=list)
    velocity_path: str = ""  # "velocity/<id>.npy" when the item has velocities (recordings), "" when not
    notes_source: str = ""  # a recording's MIDI file (`source` is its audio file); "" for a rendered item
    lag_ms: float | None = None  # a recording: how late its sound came after its notes (corrected), ms
    align_confidence: float | None = None  # a recording: the alignment check's confidence (data/recordings.py)
    timbre: str = ""  # the harpsichord it was rendered with (notes/render.py TIMBRES); "" for a recording
    text_id: str = ""  # the item whose text this one shares (the piece in another timbre); "" = its own

    @property
    def text_path(self) -> str:
        return f"text/{self.text_id or self.id}.txt"

    @property
    def audio_path(self) -> str:
        return f"audio/{self.id}.npy"


_ITEM_FIELDS = frozenset(Item.__dataclass_fields__)


def _item(entry: dict) -> Item:
    return Item(**{k: v for k, v in entry.items() if k in _ITEM_FIELDS})


@dataclass(frozen=True, eq=False)
class Index:
    """The manifest's items as columns, row i for item i (in manifest order): what training and evaluation
    choose crops and pieces by, without parsing the manifest or holding a Python object per item.

    Made from the manifest by `load` and cached in INDEX beside it (about 50 bytes per item), keyed on
    the manifest file's size, modification time and inode: a manifest rewritten by `wavegen data build`
    (a new file renamed into place) gets a new index at its first load. Item i's entry is the JSON text
    at bytes start[i]:stop[i] of the manifest (`Dataset.item`).
    """

    start: np.ndarray  # (n,) int64: where item i's entry begins in manifest.json, in bytes
    stop: np.ndarray  # (n,) int64: one past its end
    n_samples: np.ndarray  # (n,) int64: audio samples
    seconds: np.ndarray  # (n,) float64
    transpose: np.ndarray  # (n,) int32: semitones
    split: np.ndarray  # (n,) int32: its split's position in `splits`
    style: np.ndarray  # (n,) int32: its style's position in `styles`
    piece: np.ndarray  # (n,) int32: its piece, numbered in order of first appearance
    velocity: np.ndarray  # (n,) bool: it has a velocity file
    timbre: np.ndarray  # (n,) int32: its timbre's position in `timbres`
    splits: tuple[str, ...]  # the splits the items have, sorted
    styles: tuple[str, ...]  # the styles the items have, sorted
    timbres: tuple[str, ...]  # the timbres the items have, sorted ("" for recordings and older datasets)
    manifest_sha256: str
    manifest_stat: tuple[int, int, int]  # (size, mtime_ns, inode) of the manifest it was made from

    COLUMNS = ("start", "stop", "n_samples", "seconds", "transpose", "split", "style", "piece", "velocity", "timbre")
    NAMED = (("split", "splits"), ("style", "styles"), ("timbre", "timbres"))  # coded columns, their names

    def __len__(self) -> int:
        return len(self.start)


def _stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


_SPACE = re.compile(r"[ \t\n\r]*")


def _scan(text: str) -> tuple[dict, list[tuple[int, int, dict]]]:
    """Walk the top level of a manifest's JSON: its settings (every key but "items"), and for each item its
    (start, stop) in characters with its entry. Entries are yielded as they are read (see `_columns`), so
    the whole manifest is never a tree of Python objects."""
    dec = json.JSONDecoder()
    header: dict[str, Any] = {}

    def space(p: int) -> int:
        return _SPACE.match(text, p).end()  # type: ignore[union-attr]

    def expect(p: int, c: str) -> int:
        if text[p : p + 1] != c:
            raise ValueError(f"expected {c!r} at character {p}")
        return space(p + 1)

    def entries() -> Iterator[tuple[int, int, dict]]:
        p = expect(space(0), "{")
        while text[p : p + 1] != "}":
            key, p = dec.raw_decode(text, p)
            if not isinstance(key, str):
                raise ValueError(f"a key that is not a string at character {p}")
            p = expect(space(p), ":")
            if key == "items":
                header[key] = None
                p = expect(p, "[")
                while text[p : p + 1] != "]":
                    entry, end = dec.raw_decode(text, p)
                    if not isinstance(entry, dict):
                        raise ValueError(f"an item that is not an object at character {p}")
                    yield p, end, entry
                    p = space(end)
                    if text[p : p + 1] != "]":
                        p = expect(p, ",")
                p = space(p + 1)
            else:
                header[key], p = dec.raw_decode(text, p)
                p = space(p)
            if text[p : p + 1] != "}":
                p = expect(p, ",")
        if space(p + 1) != len(text):
            raise ValueError(f"extra data after the manifest at character {space(p + 1)}")

    return header, entries()  # type: ignore[return-value]


def _index(data: bytes | mmap.mmap, stat: tuple[int, int, int]) -> tuple[dict, Index]:
    """The manifest's settings and its items' Index, from the manifest's bytes."""
    text = str(memoryview(data), "utf-8")
    header, entries = _scan(text)
    cols: dict[str, list] = {name: [] for name in Index.COLUMNS}
    pieces: dict[str, int] = {}
    for start, stop, e in entries:
        cols["start"].append(start)
        cols["stop"].append(stop)
        cols["n_samples"].append(int(e["n_samples"]))
        cols["seconds"].append(float(e["seconds"]))
        cols["transpose"].append(int(e["transpose"]))
        cols["split"].append(str(e["split"]))
        cols["style"].append(str(e["style"]))
        cols["piece"].append(pieces.setdefault(str(e["piece"]), len(pieces)))
        cols["velocity"].append(bool(e.get("velocity_path")))
        cols["timbre"].append(str(e.get("timbre", "")))
    if "items" not in header:
        raise ValueError("no items in it")
    del header["items"]
    if not text.isascii():  # offsets in characters -> in bytes (json.dumps writes ASCII; others may not)
        pos = chars = 0
        starts, stops = [], []
        for a, b in zip(cols["start"], cols["stop"]):
            pos += len(text[chars:a].encode())
            starts.append(pos)
            pos += len(text[a:b].encode())
            stops.append(pos)
            chars = b
        cols["start"], cols["stop"] = starts, stops
    names = {}
    for column, plural in Index.NAMED:
        names[plural] = tuple(sorted(set(cols[column])))
        code = {v: i for i, v in enumerate(names[plural])}
        cols[column] = [code[v] for v in cols[column]]
    dtypes = {"start": np.int64, "stop": np.int64, "n_samples": np.int64, "seconds": np.float64,
              "transpose": np.int32, "split": np.int32, "style": np.int32, "piece": np.int32, "velocity": bool,
              "timbre": np.int32}
    arrays = {name: np.array(cols[name], dtype=dtypes[name]) for name in Index.COLUMNS}
    return header, Index(**arrays, **names, manifest_sha256=hashlib.sha256(data).hexdigest(), manifest_stat=stat)


def _read_index(path: Path, stat: tuple[int, int, int]) -> tuple[dict, Index] | None:
    """The cached index at `path` if it was made from the manifest of `stat` by this version, else None."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes())
            if meta.get("index_version") != INDEX_VERSION or tuple(meta.get("manifest_stat", ())) != stat:
                return None
            arrays = {name: z[name] for name in Index.COLUMNS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # missing, half-written or foreign: made again
    if len({len(a) for a in arrays.values()}) > 1:
        return None
    return meta["header"], Index(**arrays, **{plural: tuple(meta[plural]) for _, plural in Index.NAMED},
                                 manifest_sha256=meta["manifest_sha256"], manifest_stat=stat)


def _write_index(path: Path, header: dict, index: Index) -> None:
    """Cache `index` at `path` (atomically); where the folder cannot be written, the next load makes it again."""
    meta = {"index_version": INDEX_VERSION, "manifest_stat": list(index.manifest_stat),
            "manifest_sha256": index.manifest_sha256, "header": header,
            **{plural: list(getattr(index, plural)) for _, plural in Index.NAMED}}
    try:
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            np.savez(f, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                     **{name: getattr(index, name) for name in Index.COLUMNS})
    except (OSError, WavegenError):
        pass


class Items(Sequence[Item]):
    """The items `numbers` of a dataset, each parsed from its manifest entry when first asked for (the last
    ITEM_CACHE kept): a list of a million items that costs its numbers, not a million objects."""

    def __init__(self, ds: Dataset, numbers: np.ndarray | Sequence[int]):
        self.ds = ds
        self.numbers = np.asarray(numbers, dtype=np.int64)  # (k,) item numbers in the dataset
        self._cache: dict[int, Item] = {}

    def __len__(self) -> int:
        return len(self.numbers)

    def __getitem__(self, j):  # type: ignore[override]
        if isinstance(j, slice):
            return Items(self.ds, self.numbers[j])
        n = int(self.numbers[j])
        item = self._cache.get(n)
        if item is None:
            if len(self._cache) >= ITEM_CACHE:
                self._cache.pop(next(iter(self._cache)))
            item = self._cache[n] = self.ds.item(n)
        return item



def read_velocity_npy(path: str | os.PathLike, n_ticks: int) -> np.ndarray:
    """The (n_ticks, 88) uint8 velocity roll of a .npy file (velocity/<id>.npy), memory-mapped; a file that
    is truncated or of another dtype or shape is a WavegenError naming it (as audio.read_pcm_npy)."""
    try:
        vel = np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WavegenError(f"{path}: not a complete velocity array ({detail})") from None
    if not isinstance(vel, np.ndarray) or vel.dtype != np.uint8 or vel.shape != (n_ticks, T.N_KEYS):
        got = f"{vel.dtype} {vel.shape}" if isinstance(vel, np.ndarray) else type(vel).__name__
        raise WavegenError(f"{path}: velocities are {got}, not uint8 ({n_ticks}, {T.N_KEYS})")
    return vel


@dataclass(frozen=True, eq=False)
class Dataset:
    """A built dataset (`load`): its folder, its manifest's settings (`manifest`: every key but the items),
    its items as columns (`index`) and the manifest's bytes, memory-mapped, for reading one item's entry
    (`item`). A manifest replaced while a Dataset reads it (a rebuild) does not change what it reads."""

    root: Path
    manifest: dict
    index: Index
    manifest_bytes: mmap.mmap = field(repr=False)

    def __getstate__(self) -> dict:  # for spawned loader workers: the mmap is opened again there
        return {"root": self.root, "manifest": self.manifest, "index": self.index}

    def __setstate__(self, state: dict) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)
        path = self.root / MANIFEST
        data, stat = _map(path)
        if stat != self.index.manifest_stat:
            raise WavegenError(f"{path}: changed while it was being read (rebuilt?); start again")
        object.__setattr__(self, "manifest_bytes", data)

    @property
    def sample_rate_hz(self) -> int:
        return int(self.manifest["sample_rate_hz"])

    @property
    def tick_ms(self) -> float:
        return float(self.manifest["tick_ms"])

    @property
    def samples_per_tick(self) -> int:
        return int(self.manifest["samples_per_tick"])

    def item(self, i: int) -> Item:
        """Item number i (its row in `index`), parsed from its entry in the manifest."""
        return _item(json.loads(self.manifest_bytes[int(self.index.start[i]) : int(self.index.stop[i])]))

    def select(self, split: str | None = None, *, style: str | None = None, transpose: int | None = None,
               timbre: str | None = None, min_samples: int = 0) -> np.ndarray:
        """(k,) int64: in manifest order, the numbers of the items of `split` (every split given None), of
        `style`, `transpose` and `timbre` where given, with more than `min_samples` samples."""
        ix = self.index
        keep = ix.n_samples > min_samples
        for value, names, column in ((split, ix.splits, ix.split), (style, ix.styles, ix.style),
                                     (timbre, ix.timbres, ix.timbre)):
            if value is not None:
                keep &= column == (names.index(value) if value in names else -1)
        if transpose is not None:
            keep &= ix.transpose == transpose
        return np.flatnonzero(keep)

    def items_of(self, numbers: np.ndarray | Sequence[int]) -> Items:
        """The items `numbers` (from `select`), each read when it is first used."""
        return Items(self, numbers)

    def styles(self, split: str | None = None) -> list[str]:
        """The styles of the items of `split` (of every item given None), sorted."""
        return [self.index.styles[c] for c in np.unique(self.index.style[self.select(split)])]

    def timbres(self, split: str | None = None) -> list[str]:
        """The timbres (the harpsichords rendered, by name) of the items of `split` (every item given
        None), sorted; "" stands for items without one (recordings, datasets built before timbres)."""
        return [self.index.timbres[c] for c in np.unique(self.index.timbre[self.select(split)])]

    def items(self, split: str | None = None) -> list[Item]:
        """Every item of `split` (every item given None): reads the manifest's entries of all of them, so
        it is for summaries; training and evaluation choose with `select` and read with `items_of`."""
        return [self.item(i) for i in self.select(split)]

    def audio(self, item: Item) -> np.ndarray:
        """(n_samples,) int16, memory-mapped: crops read only what they touch. A broken file (truncated, or
        not the item's n_samples long) is a WavegenError naming it."""
        try:
            return read_pcm_npy(self.root / item.audio_path, item.n_samples)
        except WavegenError as e:
            raise WavegenError(f"{e}; rerun `wavegen data build` to rebuild it") from None

    def velocity(self, item: Item) -> np.ndarray | None:
        """(n_ticks, 88) uint8, memory-mapped: the MIDI velocity (1..127) of the note sounding at each tick
        and key, 0 where none sounds; None for an item without velocities (every rendered corpus item).
        A broken file (truncated, another dtype or shape) is a WavegenError naming it."""
        if not item.velocity_path:
            return None
        try:
            return read_velocity_npy(self.root / item.velocity_path, item.n_ticks)
        except WavegenError as e:
            raise WavegenError(f"{e}; rerun `wavegen data build` to rebuild it") from None

    def text(self, item: Item) -> T.KeyText:
        return T.read_file(self.root / item.text_path)

    def provenance(self) -> dict[str, Any]:
        """Where a model's data came from, for its records, without this machine's paths: the folder's
        name, a digest of its manifest (the same digest is the same data), its size and its soundfont."""
        ix, m = self.index, self.manifest
        return {"name": self.root.resolve().name, "manifest_sha256": ix.manifest_sha256,
                "items": len(ix), "pieces": len(np.unique(ix.piece)),
                "hours": round(sum(ix.seconds.tolist()) / 3600, 3),
                "styles": list(self.styles()), "transpositions": m.get("transpositions"),
                "soundfont": Path(str(m.get("soundfont", ""))).name, "soundfont_sha256": m.get("soundfont_sha256"),
                **({"timbres": {name: {"soundfont": Path(t["soundfont"]).name, "soundfont_sha256": t["soundfont_sha256"]}
                                for name, t in m["timbres"].items()}} if m.get("timbres") else {})}


def _map(path: Path) -> tuple[mmap.mmap, tuple[int, int, int]]:
    """The manifest's bytes, memory-mapped, and its (size, mtime_ns, inode)."""
    with path.open("rb") as f:
        stat = _stat_key(os.fstat(f.fileno()))
        if not stat[0]:
            raise WavegenError(f"{path}: corrupt manifest (empty); rebuild with `wavegen data build`")
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), stat


def load(root: str | os.PathLike) -> Dataset:
    """The dataset in folder `root`, through its index (made and cached at the first load of its manifest)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise WavegenError(f"{root}: not a wavegen dataset (no {MANIFEST}); build one with `wavegen data build`")
    data, stat = _map(path)
    cached = _read_index(Path(root) / INDEX, stat)
    if cached is None:
        try:
            header, index = _index(data, stat)
        except (ValueError, KeyError, TypeError) as e:
            version = _scan_version(data)
            if version is not None and version != DATASET_VERSION:
                raise WavegenError(f"{path}: dataset version {version} is not {DATASET_VERSION}; rebuild it") from None
            detail = f"no {e}" if isinstance(e, KeyError) else str(e)
            raise WavegenError(f"{path}: corrupt manifest ({detail}); rebuild with `wavegen data build`") from None
        if header.get("dataset_version") == DATASET_VERSION:
            _write_index(Path(root) / INDEX, header, index)
    else:
        header, index = cached
    if header.get("dataset_version") != DATASET_VERSION:
        raise WavegenError(f"{path}: dataset version {header.get('dataset_version')} is not {DATASET_VERSION}; rebuild it")
    return Dataset(Path(root), header, index, data)


def _scan_version(data: mmap.mmap) -> object:
    """The dataset_version a manifest that could not be indexed declares, if it is readable JSON at all."""
    try:
        return json.loads(data[:]).get("dataset_version")
    except (ValueError, AttributeError):
        return None


def style_summary(items: list[Item]) -> dict[str, dict]:
    """Per style (the corpus a piece came from): its pieces, items, hours and the licences of its items."""
    out: dict[str, dict] = {}
    for style in sorted({it.style for it in items}):
        its = [it for it in items if it.style == style]
        out[style] = {"pieces": len({it.piece for it in its}), "items": len(its),
                      "hours": round(sum(it.seconds for it in its) / 3600, 3),
                      "licences": sorted({it.licence for it in its})}
    return out


def info(ds: Dataset) -> dict:
    """Summary for `wavegen data info`: pieces and hours per split, keys used, skipped files."""
    items = ds.items()
    per_split = {}
    for split in SPLITS:
        its = [it for it in items if it.split == split]
        per_split[split] = {
            "pieces": len({it.piece for it in its}),
            "items": len(its),
            "hours": round(sum(it.seconds for it in its) / 3600, 3),
        }
    used = sorted(set("".join(it.keys for it in items)))
    size = sum(f.stat().st_size for f in ds.root.rglob("*") if f.is_file())
    return {
        "root": str(ds.root),
        "sample_rate_hz": ds.sample_rate_hz,
        "tick_ms": ds.tick_ms,
        "transpositions": ds.manifest["transpositions"],
        "pieces": len({it.piece for it in items}),
        "items": len(items),
        "hours": round(sum(it.seconds for it in items) / 3600, 3),
        "splits": per_split,
        "styles": style_summary(items),
        **({"timbres": {name: {"items": len(its), "hours": round(sum(it.seconds for it in its) / 3600, 3)}
                        for name in ds.timbres() for its in [[it for it in items if it.timbre == name]]}}
           if ds.manifest.get("timbres") else {}),
        "lowest_pitch": min((it.lowest_pitch for it in items if it.n_ticks), default=None),
        "highest_pitch": max((it.highest_pitch for it in items if it.n_ticks), default=None),
        "keys_used": len(used),
        "keys": "".join(used),
        "clipped_samples": sum(it.clipped for it in items),
        "skipped": ds.manifest["skipped"],
        "bytes_on_disk": size,
    }


@dataclass
class Described:
    """`wavegen data info`: a dataset's summary (`info`); summary() is its table, or with as_json its JSON."""

    info: dict
    as_json: bool = False

    def summary(self) -> str:
        from wavegen.notes.plot import pitch_name

        return json.dumps(self.info, indent=1) if self.as_json else info_text(self.info, pitch_name)


def describe(path: str | os.PathLike, *, as_json: bool = False) -> Described:
    """`wavegen data info`: the summary of the dataset at `path`."""
    return Described(info(load(path)), as_json)


def info_text(s: dict, pitch_name: Callable[[int], str]) -> str:
    """`info`'s summary as the table `wavegen data info` prints."""
    lines = [f"dataset {s['root']}: {s['sample_rate_hz']} Hz, {s['tick_ms']:g} ms ticks, "
             f"transpositions {s['transpositions']}", f"{'split':<8}{'pieces':>8}{'items':>8}{'hours':>9}"]
    for split, row in s["splits"].items():
        lines.append(f"{split:<8}{row['pieces']:>8}{row['items']:>8}{row['hours']:>9.3f}")
    lines.append(f"{'all':<8}{s['pieces']:>8}{s['items']:>8}{s['hours']:>9.3f}")
    if len(s.get("styles", {})) > 1:
        lines.append("styles: " + ", ".join(f"{name} {row['pieces']} pieces {row['hours']:.3f} h"
                                            for name, row in s["styles"].items()))
    if s.get("timbres"):
        lines.append("timbres: " + ", ".join(f"{name} {row['items']} items {row['hours']:.3f} h"
                                             for name, row in s["timbres"].items()))
    if s["lowest_pitch"] is not None:
        lines.append(f"keys used: {s['keys_used']} of 88, {pitch_name(s['lowest_pitch'])} (MIDI {s['lowest_pitch']}) "
                     f"to {pitch_name(s['highest_pitch'])} (MIDI {s['highest_pitch']}): {s['keys']}")
    lines.append(f"clipped samples: {s['clipped_samples']}; on disk: {s['bytes_on_disk'] / 2**20:.1f} MiB")
    lines.append(f"skipped files: {len(s['skipped'])}")
    lines += [f"  {skipped['reason']}" for skipped in s["skipped"]]
    return "\n".join(lines)
