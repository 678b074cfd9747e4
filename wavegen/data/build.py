"""Building a dataset: aligned (88-key text, harpsichord audio) pairs, built in parallel and cached by content.

A dataset folder holds::

    manifest.json          settings, one entry per piece and transposition, the skipped files
    text/<id>.txt          the 88-key text (the audio is rendered from it, so notes and sound align)
    audio/<id>.npy         int16 mono audio, read back through a memory map
                           (rendered with several SoundFonts, `--soundfont A --soundfont B`, an item per
                           timbre: audio/<id>@<timbre>.npy, all of a piece's timbres sharing its text)
    velocity/<id>.npy      (recordings only) uint8 (n_ticks, 88): the velocity sounding at each tick and key
    items/<id>.json        one item's entry and cache keys, written when its files are complete

Sample i of an item's audio lies in tick i // samples_per_tick of its text. Each item is cached by
content: its text by the source file's bytes and the settings that shape the text, its audio by the
text, the sample rate, the SoundFont's bytes and the renderer version (so adding a timbre renders only
that timbre). A re-run redoes only what
changed; a file that fails is skipped with its reason and never stops the build.

A recording (data/recordings.py: `--pairs`, `--maestro`) is read, not rendered: its audio becomes mono at
the dataset's rate, its alignment with its notes is checked and corrected (`build_recording`), and its
velocities are kept beside the text. Its cache key is its MIDI file's bytes, its audio file's name, size
and modification time (hashing hundreds of hours of audio on every run would cost more than reading it),
and the settings.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from wavegen.audio import read_pcm_npy, read_recording, to_int16, write_pcm_npy
from wavegen.data import corpora, recordings
from wavegen.data.corpora import Source, corpus_sources, midi_dir_sources  # noqa: F401  (build.X still works)
from wavegen.data.dataset import (
    DATASET_VERSION,
    MANIFEST,
    Item,
    read_velocity_npy,
    samples_per_tick,
    style_summary,
)
from wavegen.errors import WavegenError
from wavegen.files import atomic_path, check_output_dir, write_text_atomic
from wavegen.notes import text as T
from wavegen.notes.midi import read_midi_bytes, transpose_notes
from wavegen.notes.render import (
    RENDER_VERSION,
    render_notes,
    resolve_timbre,
    soundfont_digest,
)

TEXT_VERSION = 1  # bump when the text made from the same source changes (invalidates text caches)
RECORDING_VERSION = 1  # bump when a recording's item changes for the same files (alignment, pedal, velocity)
TEST_SHARE, VALID_SHARE = 0.05, 0.05


@dataclass(frozen=True)
class BuildSettings:
    sample_rate_hz: int = 16_000
    tick_ms: float = T.DEFAULT_TICK_MS
    transpositions: tuple[int, ...] = (0,)
    fold_octaves: bool = False
    soundfont: str = ""  # resolved path (of the first timbre)
    soundfont_sha256: str = ""
    # (name, SoundFont path, its sha256) per timbre, rendered in this order; one entry: items keep plain ids
    timbres: tuple[tuple[str, str, str], ...] = ()
    # recordings: a lag up to this is corrected (the audio shifted by whole samples), a larger one skips the
    # item; and a confidence below this (standard deviations, data/recordings.py) skips it as a wrong pair.
    # Calibrated in docs/data.md (scripts/calibrate_alignment.py).
    max_lag_ms: float = 100.0
    min_align_confidence: float = 5.0


# ---------------------------------------------------------------------------------------------
# splits


def split_of(piece: str) -> tuple[str, float]:
    """Deterministic split by the piece's name: 5 % test, 5 % validation, the rest training."""
    u = int.from_bytes(hashlib.sha256(piece.encode()).digest()[:8], "big") / 2**64
    return ("test" if u < TEST_SHARE else "valid" if u < TEST_SHARE + VALID_SHARE else "train"), u


def assign_splits(pieces: Sequence[str]) -> dict[str, str]:
    """Split by piece; with three or more pieces, at least one each lands in test and valid."""
    drawn = {p: split_of(p) for p in sorted(set(pieces))}
    splits = {p: s for p, (s, _) in drawn.items()}
    if len(splits) >= 3:
        for want in ("test", "valid"):
            train = sorted((u, p) for p, (_, u) in drawn.items() if splits[p] == "train")
            if want not in splits.values() and len(train) > 1:
                splits[train[0][1]] = want
    return splits


# ---------------------------------------------------------------------------------------------
# one source -> its items (runs in a worker process)


def _digest(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True).encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def _item_id(piece: str, transpose: int) -> str:
    return piece if transpose == 0 else f"{piece}_t{transpose:+d}"


def _timbre_ids(text_id: str, settings: BuildSettings) -> list[tuple[str, str, str, str]]:
    """(item id, timbre, SoundFont path, its sha256) per timbre of the build: one timbre keeps the text's id
    (the datasets built before timbres keep their cache), several are told apart by "@<timbre>"."""
    if len(settings.timbres) == 1:
        return [(text_id, *settings.timbres[0])]
    return [(f"{text_id}@{name}", name, path, sha) for name, path, sha in settings.timbres]


def _source_notes(src: Source, data: bytes, settings: BuildSettings) -> tuple[list[T.Note], list[str]]:
    if src.kind in ("midi", "random"):  # a random sketch's bytes are a MIDI file
        read = read_midi_bytes(data, src.origin, fold_octaves=settings.fold_octaves)
        return read.notes, read.warnings
    from music21 import converter
    from music21.midi import translate

    warnings: list[str] = []
    try:
        score = converter.parse(src.path, number=src.number)
    except Exception as e:  # music21 raises many kinds on a score it cannot read
        raise WavegenError(f"{src.origin}: music21 cannot parse this score ({type(e).__name__}: {e})") from None
    _unshare_marks(score)
    try:
        score = score.expandRepeats()
    except Exception as e:
        warnings.append(f"{src.origin}: repeats not expanded ({e}); played as written")
        _drop_repeats(score)  # else music21's MIDI writer tries to expand them again, and fails
    midi = translate.streamToMidiFile(score).writestr()
    read = read_midi_bytes(midi, src.origin, fold_octaves=settings.fold_octaves)
    return read.notes, warnings + read.warnings


def _unshare_marks(score) -> None:
    """Give every time signature, key signature and tempo mark of a music21 score its own object, in
    place. music21's ABC reader puts one object in several measures (a tune that alternates 4/2 and 4/4),
    which its MIDI writer then refuses ("already found in this Stream")."""
    import copy

    seen: set[int] = set()
    for stream in score.recurse(streamsOnly=True, includeSelf=True):
        for el in list(stream.getElementsByClass(("TimeSignature", "KeySignature", "MetronomeMark"))):
            if id(el) in seen:
                stream.replace(el, copy.deepcopy(el))
            else:
                seen.add(id(el))


def _drop_repeats(score) -> None:
    """Remove the repeat barlines, repeat expressions (D.C., segno, ...) and ending brackets of a music21
    score in place, so that it is played once, as written."""
    from music21 import bar, repeat, spanner

    for m in score.recurse().getElementsByClass("Measure"):
        if isinstance(m.leftBarline, bar.Repeat):
            m.leftBarline = None
        if isinstance(m.rightBarline, bar.Repeat):
            m.rightBarline = None
        for el in list(m.getElementsByClass(repeat.RepeatExpression)):
            m.remove(el)
    for sp in list(score.recurse().getElementsByClass(spanner.RepeatBracket)):
        score.remove(sp, recurse=True)


def source_text(src: Source, tick_ms: float = T.DEFAULT_TICK_MS) -> T.KeyText:
    """One source as 88-key text, made exactly as `build` makes it (untransposed)."""
    notes, _ = _source_notes(src, corpora.source_bytes(src), BuildSettings(tick_ms=tick_ms))
    return T.from_notes(notes, tick_ms, meta={"style": src.style})


def corpus_text(name: str, piece: str, tick_ms: float = T.DEFAULT_TICK_MS) -> T.KeyText:
    """One piece of a corpus (see `corpora`; e.g. "bach", "bwv244.37") as 88-key text, made exactly as
    `build` makes it."""
    src = next((s for s in corpora.corpus(name).list_all() if s.piece == piece), None)
    if src is None:
        raise WavegenError(f"{piece}: not a piece of the {name} corpus (e.g. bwv244.37 of bach)")
    return source_text(src, tick_ms)


def _load_item(out_dir: Path, item_id: str) -> Item | None:
    meta = out_dir / "items" / f"{item_id}.json"
    try:
        item = Item(**json.loads(meta.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not (out_dir / item.text_path).is_file():
        return None
    try:  # a truncated or foreign .npy (a crash, a full disk, a hand) is rebuilt, never trusted
        read_pcm_npy(out_dir / item.audio_path, item.n_samples)
        if item.velocity_path:
            read_velocity_npy(out_dir / item.velocity_path, item.n_ticks)
    except WavegenError:
        return None
    return item


def _item_from(kt: T.KeyText, item_id: str, src: Source, tr: int, pcm: np.ndarray, settings: BuildSettings,
               **fields) -> Item:
    used = np.nonzero(kt.roll.any(axis=0))[0]
    pitches = used + T.LOWEST_PITCH
    return Item(
        id=item_id, piece=src.piece, transpose=tr, split="", source=src.origin,  # split: set by build
        licence=src.licence, style=src.style, n_ticks=kt.n_ticks, n_samples=len(pcm),
        seconds=len(pcm) / settings.sample_rate_hz, lowest_pitch=int(pitches.min()) if len(pitches) else 0,
        highest_pitch=int(pitches.max()) if len(pitches) else 0, keys="".join(T.KEY_CHARS[k] for k in used),
        **fields,
    )


def build_recording(src: Source, settings: BuildSettings, out_dir: str) -> tuple[list[Item], list[str], int]:
    """Build (or reuse) the item of one recording (`Source.kind == "recording"`): its notes read with the
    sustain pedal and velocities, its audio read (mono, the dataset's rate), the alignment checked and the
    audio shifted onto the notes; returns ([item], warnings, 1 if built). An unreadable or truncated file,
    a lag beyond `settings.max_lag_ms` and a confidence below `settings.min_align_confidence` are
    WavegenErrors (the item is skipped with the reason). The files are written before the item's entry."""
    out = Path(out_dir)
    audio_file = Path(src.audio)
    data = corpora.source_bytes(src)
    try:
        st = audio_file.stat()
    except OSError as e:
        raise WavegenError(f"{audio_file}: cannot read ({e.strerror})") from None
    key = _digest(data, audio_file.name, st.st_size, st.st_mtime_ns, RECORDING_VERSION, TEXT_VERSION,
                  settings.tick_ms, settings.fold_octaves, settings.sample_rate_hz, settings.max_lag_ms,
                  settings.min_align_confidence, src.style, src.seconds)
    old = _load_item(out, src.piece)
    if old is not None and old.text_key == key and old.audio_key == key:
        return [old], [], 0
    read = read_midi_bytes(data, src.path, fold_octaves=settings.fold_octaves, sustain_pedal=True)
    rec = read_recording(audio_file, settings.sample_rate_hz)
    last_onset = max(n.start for n in read.notes)
    if rec.source_seconds < last_onset:
        raise WavegenError(f"{audio_file}: the audio ends at {rec.source_seconds:.1f} s, before its notes do "
                           f"(the last onset of {src.path} is at {last_onset:.1f} s): truncated, or another "
                           "piece's recording; skipped")
    if src.seconds is not None and rec.source_seconds < src.seconds - 1.0:
        raise WavegenError(f"{audio_file}: {rec.source_seconds:.1f} s of audio, but the table lists "
                           f"{src.seconds:.1f} s: truncated; copy it again")
    al = recordings.align(rec.audio, settings.sample_rate_hz, read.notes)
    if al.confidence < settings.min_align_confidence:
        raise WavegenError(f"{audio_file}: its onsets do not match its notes ({src.path}): alignment confidence "
                           f"{al.confidence:.1f} < {settings.min_align_confidence:g} (lag {al.lag_ms:+.0f} ms); "
                           "a wrong pair? skipped")
    if abs(al.lag_ms) > settings.max_lag_ms:
        raise WavegenError(f"{audio_file}: its sound is {al.lag_ms:+.0f} ms off its notes ({src.path}; confidence "
                           f"{al.confidence:.1f}), beyond the {settings.max_lag_ms:g} ms corrected; skipped (align "
                           "the MIDI to the audio, or check that it is this recording's)")
    audio = recordings.shift_audio(rec.audio, al.shift_samples(settings.sample_rate_hz))
    spt = samples_per_tick(settings.sample_rate_hz, settings.tick_ms)
    n_ticks = max(T.notes_to_roll(read.notes, settings.tick_ms).shape[0], len(audio) // spt)
    kt = T.from_notes(read.notes, settings.tick_ms, meta={"style": src.style}, n_ticks=n_ticks)
    pcm, clipped = to_int16(audio)
    if len(pcm) < n_ticks * spt:  # notes ring past the recording's end: silence under them
        pcm = np.concatenate([pcm, np.zeros(n_ticks * spt - len(pcm), np.int16)])
    vel = T.velocity_roll(kt.roll, read.notes, read.velocities, settings.tick_ms)
    write_text_atomic(out / "text" / f"{src.piece}.txt", T.write(kt))
    write_pcm_npy(out / "audio" / f"{src.piece}.npy", pcm)
    with atomic_path(out / "velocity" / f"{src.piece}.npy") as tmp:
        np.save(tmp, vel)
    warnings = list(read.warnings)
    item = _item_from(kt, src.piece, src, 0, pcm, settings, clipped=clipped,
                      peak=round(float(np.abs(audio).max(initial=0.0)), 4), text_key=key, audio_key=key,
                      warnings=warnings, velocity_path=f"velocity/{src.piece}.npy", notes_source=src.path,
                      lag_ms=al.lag_ms, align_confidence=al.confidence)
    write_text_atomic(out / "items" / f"{src.piece}.json", json.dumps(asdict(item), indent=1))
    return [item], warnings, 1


def build_source(src: Source, settings: BuildSettings, out_dir: str) -> tuple[list[Item], list[str], int]:
    """Build (or reuse) every transposition of one source. Returns (items, warnings, items rebuilt).

    The items' split is set afterwards by `build`, from the pieces that built (`_set_splits`)."""
    if src.kind == "recording":
        return build_recording(src, settings, out_dir)
    out = Path(out_dir)
    data = corpora.source_bytes(src)
    text_setting = (TEXT_VERSION, settings.tick_ms, settings.fold_octaves, src.kind, src.style)
    if src.number is not None:  # one tune of a file of many (a file's single piece keeps its old key)
        text_setting += (src.number,)
    notes: list[T.Note] | None = None
    warnings: list[str] = []
    items: list[Item] = []
    rebuilt = 0
    for tr in settings.transpositions:
        text_id = _item_id(src.piece, tr)
        text_key = _digest(data, text_setting, tr)
        timbres = _timbre_ids(text_id, settings)
        olds = {item_id: _load_item(out, item_id) for item_id, *_ in timbres}
        text_path = out / "text" / f"{text_id}.txt"
        # the text made by an earlier build of this piece: any of its timbres', or its one-timbre item's
        earlier = [*olds.values(), *([] if text_id in olds else [_load_item(out, text_id)])]
        made = [old for old in earlier if old is not None and old.text_key == text_key]
        if made:
            text = text_path.read_text(encoding="utf-8")
            item_warnings = made[0].warnings
        else:
            if notes is None:
                notes, warnings = _source_notes(src, data, settings)
            moved = transpose_notes(notes, tr)
            if moved is None:
                warnings.append(f"{src.origin}: transposition {tr:+d} leaves the 88 keys; skipped")
                continue
            text = T.write(T.from_notes(moved, settings.tick_ms, meta={"style": src.style}))
            write_text_atomic(text_path, text)
            item_warnings = list(warnings)
        kt = T.parse(text, str(text_path))
        for item_id, timbre, soundfont, sha in timbres:
            audio_key = _digest(text.encode(), settings.sample_rate_hz, sha, RENDER_VERSION)
            old = olds[item_id]
            if old is not None and old.text_key == text_key and old.audio_key == audio_key and old.timbre in (timbre, ""):
                if old.timbre != timbre:  # built before items named their timbre: the same audio, named now
                    old.timbre = timbre
                    write_text_atomic(out / "items" / f"{item_id}.json", json.dumps(asdict(old), indent=1))
                items.append(old)
                continue
            rendered = render_notes(
                kt.notes(), sample_rate_hz=settings.sample_rate_hz, soundfont=soundfont,
                min_seconds=kt.n_ticks * kt.tick_s,
            )
            pcm, _ = to_int16(rendered.audio)
            write_pcm_npy(out / "audio" / f"{item_id}.npy", pcm)
            item = _item_from(kt, item_id, src, tr, pcm, settings, clipped=rendered.clipped,
                              peak=round(rendered.peak, 4), text_key=text_key, audio_key=audio_key,
                              warnings=item_warnings, timbre=timbre, text_id="" if item_id == text_id else text_id)
            write_text_atomic(out / "items" / f"{item_id}.json", json.dumps(asdict(item), indent=1))
            items.append(item)
            rebuilt += 1
    return items, warnings, rebuilt


def _die_with_parent(parent: int) -> None:
    """Worker initializer: the worker ends when the build process ends, however it ends (kill -9 too), so
    no worker renders on for minutes into a folder nobody builds. On Linux the kernel sends SIGKILL
    (prctl PR_SET_PDEATHSIG); elsewhere a thread checks every half second whether the parent is gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="wavegen-die-with-parent", daemon=True).start()


def _build_one(args: tuple[Source, BuildSettings, str]) -> tuple[str, list[Item], list[str], int, str]:
    """Worker entry: never raises; a failure comes back as its one-line reason."""
    src, settings, out_dir = args
    try:
        items, warnings, rebuilt = build_source(src, settings, out_dir)
        return src.origin, items, warnings, rebuilt, ""
    except WavegenError as e:
        return src.origin, [], [], 0, str(e)
    except Exception as e:  # a bug or a library failure on one file must not stop the build
        return src.origin, [], [], 0, f"{src.origin}: failed ({type(e).__name__}: {e})"


# ---------------------------------------------------------------------------------------------
# the whole build


def _set_splits(items: list[Item], out: Path, fixed: dict[str, str] | None = None) -> None:
    """Split by the pieces that produced items, so that a file that failed takes no test or validation
    slot; a piece in `fixed` keeps the split given there (MAESTRO's own). An item whose split changed is
    written again (items/<id>.json)."""
    fixed = fixed or {}
    splits = {**assign_splits([it.piece for it in items if it.piece not in fixed]), **fixed}
    for it in items:
        if it.split != splits[it.piece]:
            it.split = splits[it.piece]
            write_text_atomic(out / "items" / f"{it.id}.json", json.dumps(asdict(it), indent=1))


@dataclass
class BuildResult:
    manifest: dict
    built: int  # items rendered in this run
    reused: int  # items taken from the cache
    skipped: list[dict]
    seconds: float
    out: str | os.PathLike = ""  # the folder, as it was given

    def summary(self) -> str:
        """The line `wavegen data build` prints."""
        items = self.manifest["items"]
        made = "read" if items and all(it.get("notes_source") for it in items) else "rendered"
        return (f"built {self.out}: {len(items)} items ({self.built} {made}, {self.reused} from the cache), "
                f"{sum(it['seconds'] for it in items) / 3600:.2f} h of audio, {len(self.skipped)} files skipped, "
                f"{self.seconds:.1f} s")

    @property
    def error(self) -> str | None:
        """Why the build failed (no piece could be built), else None."""
        return None if self.manifest["items"] else f"{self.out}: no piece could be built; see the reasons above"


def resolve_timbres(soundfonts: str | os.PathLike | Sequence[str | os.PathLike] | None
                    ) -> tuple[tuple[str, str, str], ...]:
    """(name, path, sha256) of each `--soundfont` (`render.resolve_timbre`; none: the default SoundFont);
    two of one name are refused."""
    specs = [soundfonts] if soundfonts is None or isinstance(soundfonts, (str, os.PathLike)) else list(soundfonts)
    out: list[tuple[str, str, str]] = []
    for spec in specs or [None]:
        name, path = resolve_timbre(spec)
        if any(name == n for n, _, _ in out):
            raise WavegenError(f"--soundfont {spec}: a second timbre called {name!r}; name it with NAME=FILE")
        out.append((name, str(path), soundfont_digest(path)))
    return tuple(out)


def parse_transpose(spec: str) -> tuple[int, ...]:
    """'-3..3' -> (-3, ..., 3); '0' -> (0,); '-2,0,2' -> (-2, 0, 2)."""
    try:
        if ".." in spec:
            lo, hi = (int(x) for x in spec.split(".."))
            values = tuple(range(lo, hi + 1))
        else:
            values = tuple(int(x) for x in spec.split(","))
    except ValueError:
        values = ()
    if not values or any(abs(v) > 24 for v in values):
        raise WavegenError(f"--transpose {spec}: expected LO..HI or a list like -2,0,2 (semitones, |t| <= 24)")
    return tuple(sorted(set(values)))


def build(
    sources: Sequence[Source],
    out_dir: str | os.PathLike,
    *,
    sample_rate_hz: int = 16_000,
    tick_ms: float = T.DEFAULT_TICK_MS,
    transpositions: Sequence[int] = (0,),
    fold_octaves: bool = False,
    soundfont: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    max_lag_ms: float = BuildSettings.max_lag_ms,
    min_align_confidence: float = BuildSettings.min_align_confidence,
    skipped: Sequence[dict] = (),
) -> BuildResult:
    """Build a dataset folder from `sources`; see the module docstring. Returns counts and the manifest.

    progress(done, total) is called as sources finish. `skipped`: files already found unusable (a
    recording without its MIDI, say), listed in the manifest with the others. `soundfont`: one timbre or
    several (`render.resolve_timbre`: a name, a file, NAME=FILE), each piece rendered with every one.
    """
    t0 = time.perf_counter()
    samples_per_tick(sample_rate_hz, tick_ms)
    rendered = any(src.kind != "recording" for src in sources)
    recorded = any(src.kind == "recording" for src in sources)
    timbres = resolve_timbres(soundfont) if rendered else ()  # recordings need no SoundFont; before any folder
    out = check_output_dir(out_dir)
    for sub in ("text", "audio", "items") + (("velocity",) if recorded else ()):
        check_output_dir(out / sub)
    settings = BuildSettings(
        sample_rate_hz=sample_rate_hz, tick_ms=tick_ms, transpositions=tuple(transpositions),
        fold_octaves=fold_octaves, soundfont=timbres[0][1] if timbres else "",
        soundfont_sha256=timbres[0][2] if timbres else "", timbres=timbres,
        max_lag_ms=max_lag_ms, min_align_confidence=min_align_confidence,
    )
    seen: dict[str, str] = {}
    tasks, skipped = [], list(skipped)
    for src in sources:
        if src.piece in seen:
            skipped.append({"source": src.origin, "reason": (
                f"{src.origin}: same piece name {src.piece!r} as {seen[src.piece]}, which is built; "
                "rename one of the two to build both"
            )})
            continue
        seen[src.piece] = src.origin
        tasks.append((src, settings, str(out)))

    items: list[Item] = []
    warnings: list[str] = []
    built = 0
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks) or 1))
    if jobs == 1:
        results = map(_build_one, tasks)
        pool = None
    else:
        pool = cf.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_die_with_parent, initargs=(os.getpid(),))
        results = pool.map(_build_one, tasks, chunksize=1)
    try:
        for done, (path, its, warns, rebuilt, error) in enumerate(results, 1):
            if error:
                skipped.append({"source": path, "reason": error})
            items.extend(its)
            warnings.extend(warns)
            built += rebuilt
            if progress:
                progress(done, len(tasks))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    items.sort(key=lambda it: it.id)
    _set_splits(items, out, {src.piece: src.split for src in sources if src.split})
    manifest = {
        "dataset_version": DATASET_VERSION,
        "text_format_version": T.FORMAT_VERSION,
        "sample_rate_hz": sample_rate_hz,
        "tick_ms": tick_ms,
        "samples_per_tick": samples_per_tick(sample_rate_hz, tick_ms),
        "transpositions": list(settings.transpositions),
        "fold_octaves": fold_octaves,
        "soundfont": settings.soundfont,
        "soundfont_sha256": settings.soundfont_sha256,
        **({"timbres": {name: {"soundfont": path, "soundfont_sha256": sha} for name, path, sha in timbres}}
           if timbres else {}),
        "render_version": RENDER_VERSION,
        **({"alignment": {"max_lag_ms": max_lag_ms, "min_confidence": min_align_confidence,
                          "recording_version": RECORDING_VERSION}}
           if recorded else {}),
        "styles": style_summary(items),
        "items": [asdict(it) for it in items],
        "skipped": skipped,
        "warnings": warnings,
    }
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return BuildResult(manifest, built, len(items) - built, skipped, time.perf_counter() - t0, out_dir)


def select_sources(*, corpus: str | None = None, midi_dir: str | os.PathLike | None = None,
                   limit: int | None = None) -> list[Source]:
    """The sources of `wavegen data build`: a corpus (`corpora.CORPUS_NAMES`, `all` for every one) or a
    folder of MIDI files (exactly one). `limit` caps the pieces of each corpus (instead of its bound:
    see `corpora.corpus_pieces`), or takes the first `limit` MIDI files."""
    if (corpus is None) == (midi_dir is None):
        raise WavegenError("give one of --corpus NAME or --midi-dir DIR")
    if corpus:
        return corpora.corpus_pieces(corpus, limit)
    sources = midi_dir_sources(midi_dir)
    return sources[:limit] if limit else sources


def select_recordings(*, pairs: str | os.PathLike | None = None, maestro: str | os.PathLike | None = None,
                      style: str | None = None, licence: str | None = None,
                      limit: int | None = None) -> tuple[list[Source], list[dict]]:
    """The recordings of `wavegen data build --pairs DIR | --maestro DIR` (exactly one) and the files
    skipped while pairing them (data/recordings.py); `limit` takes the first `limit` recordings."""
    if (pairs is None) == (maestro is None):
        raise WavegenError("give one of --pairs DIR or --maestro DIR")
    if style is not None and (not style or set(style) & set(" {}=\n\r\t")):
        raise WavegenError(f"--style {style!r}: a style is a word (no spaces, braces or '=')")
    if pairs is not None:
        sources, skipped = recordings.pair_sources(pairs, style=style or "pairs",
                                                   licence=licence or recordings.USER_SUPPLIED)
    else:
        sources, skipped = recordings.maestro_sources(maestro, style=style or "maestro",
                                                      licence=licence or recordings.MAESTRO_LICENCE)
    if not sources:
        raise WavegenError(f"{pairs or maestro}: no recording with its MIDI file to build"
                           + (f" ({skipped[0]['reason']})" if skipped else ""))
    return (sources[:limit] if limit else sources), skipped


def build_dataset(out: str | os.PathLike, *, corpus: str | None = None, midi_dir: str | os.PathLike | None = None,
                  pairs: str | os.PathLike | None = None, maestro: str | os.PathLike | None = None,
                  style: str | None = None, licence: str | None = None,
                  max_lag_ms: float | None = None, min_align_confidence: float | None = None,
                  limit: int | None = None, transpose: str = "0", sample_rate_hz: int = 16_000,
                  tick_ms: float = T.DEFAULT_TICK_MS,
                  soundfont: str | os.PathLike | Sequence[str | os.PathLike] | None = None, fold_octaves: bool = False, jobs: int | None = None,
                  note: Callable[[str], None] = lambda message: None,
                  on_start: Callable[[int], None] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> BuildResult:
    """`wavegen data build`: the sources (`select_sources`, or the recordings of `select_recordings`) built
    into `out` in each transposition of `transpose` (`parse_transpose`), both checked, and the tick length,
    before the corpus is searched. on_start(number of sources) is called before the build, progress(done,
    total) as it goes, and note(message) for each file skipped. With no piece built the result's `error`
    says so."""
    transpositions = parse_transpose(transpose)
    samples_per_tick(sample_rate_hz, tick_ms)
    skipped: list[dict] = []
    if pairs is not None or maestro is not None:
        if corpus is not None or midi_dir is not None:
            raise WavegenError("give one of --corpus, --midi-dir, --pairs or --maestro")
        if transpositions != (0,):
            raise WavegenError(f"--transpose {transpose}: a recording cannot be transposed; leave it out")
        sources, skipped = select_recordings(pairs=pairs, maestro=maestro, style=style, licence=licence,
                                             limit=limit)
    else:
        if style is not None or licence is not None:
            raise WavegenError("--style and --licence name recordings (--pairs, --maestro); a corpus has its own")
        sources = select_sources(corpus=corpus, midi_dir=midi_dir, limit=limit)
    if on_start:
        on_start(len(sources))
    result = build(sources, out, sample_rate_hz=sample_rate_hz, tick_ms=tick_ms, transpositions=transpositions,
                   fold_octaves=fold_octaves, soundfont=soundfont, jobs=jobs, progress=progress,
                   max_lag_ms=BuildSettings.max_lag_ms if max_lag_ms is None else max_lag_ms,
                   min_align_confidence=(BuildSettings.min_align_confidence if min_align_confidence is None
                                         else min_align_confidence), skipped=skipped)
    for s in result.skipped:
        note(f"skipped {s['reason']}")
    return result
