"""Reading a built dataset: its manifest, items, splits, memory-mapped audio and samples per tick.

A dataset folder holds::

    manifest.json          settings, one entry per piece and transposition, the skipped files
    text/<id>.txt          the 88-key text (the audio is rendered from it, so notes and sound align)
    audio/<id>.npy         int16 mono audio, read back through a memory map
    velocity/<id>.npy      (recordings only) uint8 (n_ticks, 88): the MIDI velocity sounding per tick and key
    items/<id>.json        one item's entry and cache keys, written when its files are complete

Sample i of an item's audio lies in tick i // samples_per_tick of its text. Training and evaluation
read datasets through this module alone: it imports neither the renderer, the MIDI reader nor music21
(`wavegen.data.build` makes datasets).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from wavegen.audio import read_pcm_npy
from wavegen.errors import WavegenError
from wavegen.notes import text as T

MANIFEST = "manifest.json"
DATASET_VERSION = 1
SPLITS = ("train", "valid", "test")

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
    """One built (text, audio) pair: a piece at one transposition."""

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

    @property
    def text_path(self) -> str:
        return f"text/{self.id}.txt"

    @property
    def audio_path(self) -> str:
        return f"audio/{self.id}.npy"



@dataclass(frozen=True)
class Dataset:
    root: Path
    manifest: dict

    @property
    def sample_rate_hz(self) -> int:
        return int(self.manifest["sample_rate_hz"])

    @property
    def tick_ms(self) -> float:
        return float(self.manifest["tick_ms"])

    @property
    def samples_per_tick(self) -> int:
        return int(self.manifest["samples_per_tick"])

    def items(self, split: str | None = None) -> list[Item]:
        fields = set(Item.__dataclass_fields__)
        out = [Item(**{k: v for k, v in d.items() if k in fields}) for d in self.manifest["items"]]
        return [it for it in out if split is None or it.split == split]

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
        path = self.root / item.velocity_path
        try:
            vel = np.load(path, mmap_mode="r")
        except (OSError, ValueError, EOFError) as e:
            detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise WavegenError(f"{path}: not a complete velocity array ({detail}); "
                               "rerun `wavegen data build` to rebuild it") from None
        if not isinstance(vel, np.ndarray) or vel.dtype != np.uint8 or vel.shape != (item.n_ticks, T.N_KEYS):
            got = f"{vel.dtype} {vel.shape}" if isinstance(vel, np.ndarray) else type(vel).__name__
            raise WavegenError(f"{path}: velocities are {got}, not uint8 ({item.n_ticks}, {T.N_KEYS}); "
                               "rerun `wavegen data build` to rebuild it")
        return vel

    def text(self, item: Item) -> T.KeyText:
        return T.read_file(self.root / item.text_path)

    def provenance(self) -> dict[str, Any]:
        """Where a model's data came from, for its records, without this machine's paths: the folder's
        name, a digest of its manifest (the same digest is the same data), its size and its soundfont."""
        items = self.items()
        m = self.manifest
        return {"name": self.root.resolve().name,
                "manifest_sha256": hashlib.sha256((self.root / MANIFEST).read_bytes()).hexdigest(),
                "items": len(items), "pieces": len({it.piece for it in items}),
                "hours": round(sum(it.seconds for it in items) / 3600, 3),
                "styles": sorted({it.style for it in items}), "transpositions": m.get("transpositions"),
                "soundfont": Path(str(m.get("soundfont", ""))).name, "soundfont_sha256": m.get("soundfont_sha256")}


def load(root: str | os.PathLike) -> Dataset:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise WavegenError(f"{root}: not a wavegen dataset (no {MANIFEST}); build one with `wavegen data build`")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as e:
        raise WavegenError(f"{path}: corrupt manifest ({e}); rebuild with `wavegen data build`") from None
    if manifest.get("dataset_version") != DATASET_VERSION:
        raise WavegenError(f"{path}: dataset version {manifest.get('dataset_version')} is not {DATASET_VERSION}; rebuild it")
    return Dataset(Path(root), manifest)


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
    if s["lowest_pitch"] is not None:
        lines.append(f"keys used: {s['keys_used']} of 88, {pitch_name(s['lowest_pitch'])} (MIDI {s['lowest_pitch']}) "
                     f"to {pitch_name(s['highest_pitch'])} (MIDI {s['highest_pitch']}): {s['keys']}")
    lines.append(f"clipped samples: {s['clipped_samples']}; on disk: {s['bytes_on_disk'] / 2**20:.1f} MiB")
    lines.append(f"skipped files: {len(s['skipped'])}")
    lines += [f"  {skipped['reason']}" for skipped in s["skipped"]]
    return "\n".join(lines)
