"""The studio's server: the HTTP API of docs/studio.md on FastAPI, and the jobs that play sketches.

`create_app` builds the app around one `Studio` (the WaveNet laid out for the fast path, the composer,
the work folder) and `serve` runs it with uvicorn. The WaveNet plays in worker threads (the compiled
kernels release the GIL), at most `jobs` at once, one per core by default; the others wait in a FIFO
queue (`Cores`) and hear their place in it. A job is one WebSocket: its audio goes back over it a tick
at a time as it is generated, and it ends when the socket says stop or closes (the tab closed), so no
tab can see or stop another's work.

What the browser sends is data, never a path: uploads are read as bytes into memory (and named only in
messages), so the server reads and writes nothing outside its package and its work folder. Every
request is checked against the limits below; bad input is a 4xx with `{"error": one line}` (a text
error adds its line and column), and an internal error is logged here and reaches the browser as one
line without a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Request, WebSocket  # at module level: FastAPI reads the endpoints' annotations by name

from wavegen.errors import WavegenError
from wavegen.notes import limits
from wavegen.notes import text as T
from wavegen.synth import denoise as denoising

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 4 * 2**20  # a MIDI or text file, a WAV to draw (4 MiB: two minutes of 16 kHz audio)
MAX_SECONDS = 600.0  # of music in one sketch the studio plays, renders or composes
MAX_TEXT_CHARS = 1_000_000  # of 88-key text in one request
RADIO_LEAD_S = 10.0  # the radio generates at most this far ahead of the wall clock since its first sound
STUDIO_COMPOSER = "composer-styles"  # five styles to blend (its MODEL_CARD.md); `compose` keeps composer-lstm
log = logging.getLogger("wavegen.studio")


class BadRequest(WavegenError):
    """Input the page sent that the server refuses: a 4xx with this one line (and a text's position)."""

    def __init__(self, message: str, status: int = 400, **extra: Any):
        super().__init__(message)
        self.status, self.extra = status, extra


def bad_text(e: T.TextFormatError) -> BadRequest:
    return BadRequest(str(e), line=e.line, column=e.column)


def _number(body: dict, key: str, default: float | None, lo: float, hi: float) -> float | None:
    v = body.get(key)
    if v is None:  # missing or null: the default
        if default is None:
            return None
        v = default
    if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
        raise BadRequest(f"{key}: {v!r} is not a number from {lo:g} to {hi:g}")
    return float(v)


def _string(body: dict, key: str, max_len: int = MAX_TEXT_CHARS) -> str | None:
    v = body.get(key)
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        raise BadRequest(f"{key}: expected text, got {type(v).__name__}")
    if len(v) > max_len:
        raise BadRequest(f"{key}: {len(v):,} characters is more than the {max_len:,} the studio takes", 413)
    return v


# ------------------------------------------------------------------------------------------------
# sketches


def parse_sketch(text: str | None, tick_ms: float | None = None, what: str = "the sketch") -> T.KeyText:
    """The 88-key text the page sent, checked: it parses, is at most MAX_SECONDS long and, given
    `tick_ms`, has that tick."""
    if not text:
        raise BadRequest(f"{what} is empty: write at least one tick (a space is a tick of rest)")
    try:
        kt = T.parse(text, source=what)
    except T.TextFormatError as e:
        raise bad_text(e) from None
    if kt.n_ticks * kt.tick_s > MAX_SECONDS:
        raise BadRequest(f"{what}: {kt.n_ticks * kt.tick_s:.0f} s is longer than the {MAX_SECONDS:.0f} s the studio "
                         "plays; split it")
    if tick_ms is not None and kt.tick_ms != tick_ms:
        raise BadRequest(f"{what}: ticks of {kt.tick_ms:g} ms; the studio's model plays {tick_ms:g} ms ticks "
                         f"(set tick_ms={T.format_number(tick_ms)} in the header)")
    return kt


def _prime(body: dict, tick_ms: float) -> list[str]:
    """The ticks of the request's "prime" (88-key text of `tick_ms` ticks to continue; none: [])."""
    from wavegen.compose.markov import ticks_of

    text = _string(body, "prime")
    return ticks_of(parse_sketch(text, tick_ms, "the prime")) if text else []


def sketch_json(kt: T.KeyText, text: str | None = None) -> dict[str, Any]:
    """The sketch as the page holds it: its runs of ticks per key (`end` exclusive) and its header."""
    notes = sorted(({"key": k, "start": s, "end": e} for k, s, e in T.roll_runs(kt.roll)),
                   key=lambda n: (n["start"], n["key"]))
    return {"text": T.write(kt) if text is None else text, "tick_ms": kt.tick_ms, "n_ticks": kt.n_ticks,
            "meta": dict(kt.meta), "seconds": kt.n_ticks * kt.tick_s, "notes": notes}


def sketch_from_notes(body: dict) -> T.KeyText:
    """`POST /api/text`: the page's runs of ticks back into a sketch."""
    tick_ms = _number(body, "tick_ms", None, limits.MIN_TICK_MS, limits.MAX_TICK_MS)
    if tick_ms is None:
        raise BadRequest("tick_ms: missing")
    max_ticks = int(MAX_SECONDS * 1000 / tick_ms)
    n_ticks = int(_number(body, "n_ticks", 0, 0, max_ticks))
    notes, meta = body.get("notes", []), body.get("meta") or {}
    if not isinstance(notes, list) or not isinstance(meta, dict):
        raise BadRequest("notes must be a list and meta an object")
    runs = []
    for i, n in enumerate(notes):
        try:
            k, s, e = (n[f] for f in ("key", "start", "end"))
            if not all(type(v) is int for v in (k, s, e)) or not (0 <= k < T.N_KEYS and 0 <= s < e <= max_ticks):
                raise ValueError
        except (TypeError, KeyError, ValueError):
            raise BadRequest(f"notes[{i}]: {n!r} is not a note: key 0..87, start < end, ticks within "
                             f"{MAX_SECONDS:.0f} s") from None
        runs.append((k, s, e))
    roll = np.zeros((max([n_ticks] + [e for _, _, e in runs]), T.N_KEYS), dtype=bool)
    for k, s, e in runs:
        roll[s:e, k] = True
    kt = T.KeyText(roll, tick_ms, {str(k): str(v) for k, v in meta.items()})
    try:
        T.write(kt)  # a header field it cannot write
    except ValueError as e:
        raise BadRequest(f"meta: {e}") from None
    return kt


def open_file(name: str, data: bytes, tick_ms: float) -> tuple[T.KeyText, list[str]]:
    """`POST /api/open`: an 88-key text or MIDI file's bytes as a sketch (MIDI quantized to `tick_ms`)."""
    from wavegen.notes.midi import MIDI_SUFFIXES, read_midi_bytes
    from wavegen.notes.sketch import TEXT_SUFFIXES

    name = Path(name or "file").name  # a label in messages only
    suffix = Path(name).suffix.lower()
    if not data:
        raise BadRequest(f"{name}: the file is empty")
    if suffix in TEXT_SUFFIXES:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(f"{name}: not text (not UTF-8); open an 88-key text or a MIDI file") from None
        return parse_sketch(text, what=name), []
    if suffix not in MIDI_SUFFIXES:
        raise BadRequest(f"{name}: unknown kind of file {suffix!r}; open 88-key text (.txt) or MIDI (.mid, .midi)")
    read = read_midi_bytes(data, source=name, max_seconds=MAX_SECONDS)
    return T.from_notes(read.notes, tick_ms), list(read.warnings)


# ------------------------------------------------------------------------------------------------
# audio


def wav_bytes(audio: np.ndarray, sample_rate_hz: int) -> bytes:
    import soundfile as sf

    from wavegen.audio import to_int16

    buf = io.BytesIO()
    sf.write(buf, to_int16(audio)[0], sample_rate_hz, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def spectrogram_json(data: bytes) -> dict[str, Any]:
    """`POST /api/spectrogram`: a WAV's key spectrogram (as `wavegen plot` draws it) as 88 rows of bytes."""
    import soundfile as sf

    from wavegen.notes.plot import SPECTROGRAM_HOP, SPECTROGRAM_RANGE_DB, key_spectrogram

    try:
        audio, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise BadRequest(f"the audio is not a WAV soundfile reads: {e}") from None
    if len(audio) / sr > MAX_SECONDS:
        raise BadRequest(f"{len(audio) / sr:.0f} s of audio is more than the {MAX_SECONDS:.0f} s the studio draws")
    db = key_spectrogram(audio.mean(axis=1), sr)
    top = float(db.max())
    scaled = np.clip((db - (top - SPECTROGRAM_RANGE_DB)) / SPECTROGRAM_RANGE_DB * 255, 0, 255).astype(np.uint8)
    return {"hop_s": SPECTROGRAM_HOP / sr, "n_frames": int(db.shape[1]),
            "data": base64.b64encode(np.ascontiguousarray(scaled).tobytes()).decode("ascii")}


# ------------------------------------------------------------------------------------------------
# the job queue


class Cores:
    """At most `n` jobs at once; the others wait in order of arrival and hear their place as it changes."""

    def __init__(self, n: int):
        self.n, self.busy, self.waiting = n, 0, []
        self.changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def slot(self, report: Callable[[int], Awaitable[None]]) -> AsyncIterator[None]:
        """Hold a core for the block; report(jobs ahead) while waiting. Cancelled, it leaves the queue."""
        me = object()
        async with self.changed:
            self.waiting.append(me)
            try:
                told = None
                while not (self.waiting[0] is me and self.busy < self.n):
                    if (ahead := self.waiting.index(me)) != told:
                        told = ahead
                        await report(ahead)
                    await self.changed.wait()
            finally:
                self.waiting.remove(me)
                self.changed.notify_all()
            self.busy += 1
        try:
            yield
        finally:  # shielded: a job cancelled while it leaves must still give its core back
            await asyncio.shield(self._release())

    async def _release(self) -> None:
        async with self.changed:
            self.busy -= 1
            self.changed.notify_all()


@dataclass
class Job:
    """What one play request makes: the header of the stream and its items, ("audio", float32 array)
    or ("ticks", first tick, text), made by a generator a worker thread runs. With `lead_s`, the worker
    keeps the audio sent at most that many seconds ahead of real time since the first audio (the radio:
    the page plays it in real time, so without end it would otherwise hold a core and fill the page's
    memory with minutes it has not played yet)."""

    start: dict[str, Any]
    items: Iterator[tuple]
    lead_s: float | None = None


_DONE = object()


def _produce(job: Job, put: Callable[[Any], None], stop: threading.Event) -> None:
    """The worker thread: run the job's generator until it ends or `stop` is set (paced by `job.lead_s`)."""
    sr, sent, t0 = job.start.get("sample_rate_hz"), 0, None
    try:
        for item in job.items:
            if stop.is_set():
                break
            put(item)
            if job.lead_s is not None and item[0] == "audio" and len(item[1]):
                t0 = time.perf_counter() if t0 is None else t0
                sent += len(item[1])
                ahead = sent / sr - (time.perf_counter() - t0)
                if ahead > job.lead_s:
                    stop.wait(ahead - job.lead_s)  # returns at once when the page stops the job
        put(_DONE)
    except WavegenError as e:
        put(e)
    except Exception as e:  # a bug: the server's log has the traceback, the page one line
        log.exception("a play job failed")
        put(RuntimeError(f"internal error: {type(e).__name__} (see the server's log)"))


# ------------------------------------------------------------------------------------------------
# the studio


class Studio:
    """The models and limits every request shares (loaded once, read by every job)."""

    def __init__(self, work: str | Path = "studio", *, model: str | None = None, composer: str | None = None,
                 jobs: int | None = None):
        import os

        import torch

        from wavegen.compose.load import load_composer
        from wavegen.nn import checkpoint
        from wavegen.synth.fast import FastWaveNet, why_not

        torch.set_num_threads(1)  # a job per core: the conditioning network must not spread over all of them
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.loaded = checkpoint.load(model)
        if reason := why_not(self.loaded.model):
            raise WavegenError(f"{self.loaded.path.name}: the studio plays with the fast path, and {reason}")
        self.fast = FastWaveNet(self.loaded.model)
        self.composer_name = composer or STUDIO_COMPOSER
        self.composer = load_composer(self.composer_name)
        self.sr, self.tick_ms = self.loaded.sample_rate_hz, self.loaded.tick_ms
        self.cores = Cores(jobs or os.cpu_count() or 1)
        self.radio_lead_s = RADIO_LEAD_S
        self.render_lock = threading.Lock()  # one FluidSynth at a time
        self._warm_up()

    def _warm_up(self) -> None:
        """Play one tick now, so the first press of play does not wait for the kernel to load."""
        from wavegen.synth.stream import stream_take

        kt = T.parse("H ")
        for _ in stream_take(self.fast, self.fast.spt, sample_rate_hz=self.sr, sketch=kt):
            pass

    def info(self) -> dict[str, Any]:
        from wavegen import __version__

        c = self.composer
        return {"model": self.loaded.path.name, "sample_rate_hz": self.sr, "tick_ms": self.tick_ms,
                "styles": self.loaded.styles, "timbres": self.loaded.timbres, "version": __version__,
                "jobs": self.cores.n,
                "composer": {"name": self.composer_name, "styles": list(c.styles), "tick_ms": c.tick_ms},
                "sampling": {"temperature": self.loaded.temperature, "min_p": self.loaded.min_p},
                "denoise_db": self.denoise({}),
                "limits": {"max_upload_bytes": MAX_UPLOAD_BYTES, "max_seconds": MAX_SECONDS,
                           "max_text_chars": MAX_TEXT_CHARS}}

    def sampling(self, body: dict) -> dict[str, float]:
        t = _number(body, "temperature", None, 0.0, 10.0)
        p = _number(body, "min_p", None, 0.0, 0.999)
        return self.loaded.sampling(t, p)

    def denoise(self, body: dict) -> float:
        """How far the take is denoised by its notes (synth/denoise.py), dB: the body's, else the default
        of `wavegen generate`; 0 for a model that does not follow notes."""
        depth = _number(body, "denoise", denoising.DEFAULT_DEPTH_DB, 0.0, denoising.MAX_DEPTH_DB)
        return depth if self.loaded.model.uses_notes else 0.0

    def style(self, body: dict, header_style: str | None = None) -> int | None:
        style = _string(body, "style", 100)
        if style and style not in self.loaded.styles:
            raise BadRequest(f"style {style!r}: the model knows {', '.join(self.loaded.styles) or 'none'}")
        return self.loaded.style_index(style, header_style)

    def timbre_name(self, body: dict) -> str | None:
        """The name of the harpsichord the body's take imitates (the denoiser's whistle limit)."""
        return self.loaded.timbre_played(_string(body, "timbre", 100) or None)

    def timbre(self, body: dict) -> int | None:
        """The id of the body's timbre (a model of several harpsichords), None for its first or a model of one."""
        timbre = _string(body, "timbre", 100)
        if timbre and timbre not in self.loaded.timbres:
            raise BadRequest(f"timbre {timbre!r}: the model plays {', '.join(self.loaded.timbres) or 'one harpsichord'}")
        return self.loaded.timbre_index(timbre) if timbre else None

    def render(self, body: dict) -> bytes:
        """`POST /api/render`: the SoundFont rendering of the sketch, at the model's rate (with the body's
        timbre's SoundFont, for a model of several)."""
        from wavegen.notes.render import render_notes, resolve_timbre

        kt = parse_sketch(_string(body, "text"))
        timbre = self.timbre(body)
        soundfont = resolve_timbre(self.loaded.timbres[timbre or 0])[1] if self.loaded.timbres else None
        with self.render_lock:
            r = render_notes(kt.notes(), sample_rate_hz=self.sr, soundfont=soundfont,
                             min_seconds=kt.n_ticks * kt.tick_s)
        return wav_bytes(r.audio, r.sample_rate_hz)

    def compose(self, body: dict) -> dict[str, Any]:
        """`POST /api/compose`: a new sketch, or the prime continued."""
        from wavegen.compose import piece

        c = self.composer
        seconds = _number(body, "seconds", 10.0, c.tick_ms / 1000, MAX_SECONDS)
        temperature = _number(body, "temperature", 1.0, 0.0, 10.0)
        seed = int(_number(body, "seed", 0, 0, 2**32 - 1))
        prime = _prime(body, c.tick_ms)
        form, style = _string(body, "form", 64), _string(body, "style", 100)
        other, weight = _string(body, "style_b", 100), _number(body, "blend", 0.0, 0.0, 1.0)
        blend = (other, weight) if other and weight else None
        n_ticks = piece.length_in_ticks(c.tick_ms, seconds=seconds)
        if (len(prime) + n_ticks) * c.tick_ms / 1000 > MAX_SECONDS:
            raise BadRequest(f"the prime and {seconds:g} s more are longer than the {MAX_SECONDS:.0f} s the studio "
                             "composes")
        composed = piece.compose(c, n_ticks, temperature=temperature, rng=np.random.default_rng(seed), prime=prime,
                                 form=form, style=style, blend=blend)
        return {**sketch_json(composed.keytext),  # sections in ticks of the whole text, the prime's included
                "sections": [[letter, a + len(prime), b + len(prime)] for letter, a, b in composed.sections]}

    def job(self, request: dict) -> Job:
        """The play request of a socket, checked, as a job (not started)."""
        from wavegen.compose.piece import check_style
        from wavegen.synth.sketchcond import sketch_samples
        from wavegen.synth.stream import StreamPlayer, composed_chunks, stream_take

        mode = request.get("mode", "sketch")
        sampling = self.sampling(request)
        depth = self.denoise(request)
        seed = int(_number(request, "seed", 0, 0, 2**32 - 1))
        if mode == "sketch":
            kt = parse_sketch(_string(request, "text"), self.tick_ms)
            n = sketch_samples(kt, self.sr)
            chunks = stream_take(self.fast, n, sample_rate_hz=self.sr, sketch=kt, seed=seed,
                                 style=self.style(request, kt.meta.get("style")), timbre=self.timbre(request),
                                 **sampling)
            if depth:
                chunks = denoising.denoised_stream(chunks, self.sr, kt.notes(), depth, self.timbre_name(request))
            return Job({"type": "start", "sample_rate_hz": self.sr, "n_samples": n, "tick_ms": self.tick_ms},
                       (("audio", a) for a in chunks))
        if mode == "radio":
            c = self.composer
            if c.tick_ms != self.tick_ms:
                raise BadRequest(f"the composer writes {c.tick_ms:g} ms ticks, the model plays {self.tick_ms:g} ms")
            compose_t = _number(request, "compose_temperature", 1.0, 0.0, 10.0)
            style = _string(request, "style", 100)
            check_style(c, style)
            prime = _prime(request, self.tick_ms)
            player = StreamPlayer(self.fast, self.sr, seed=seed, style=self.style({"style": style} if style in
                                  self.loaded.styles else {}), timbre=self.timbre(request), **sampling)

            def items() -> Iterator[tuple]:
                first = len(prime)
                cleaner = denoising.StreamDenoiser(self.sr, depth, self.timbre_name(request)) if depth else None
                for new, audio in composed_chunks(c, player, prime, np.random.default_rng(seed),
                                                  temperature=compose_t, style=style):
                    if new:
                        yield "ticks", first, " ".join(new) + " "
                        first += len(new)
                    if cleaner is not None:  # the notes reach past the audio: the player looks ahead
                        audio = cleaner.push(audio, player.notes())
                    if len(audio):
                        yield "audio", audio

            return Job({"type": "start", "sample_rate_hz": self.sr, "n_samples": None, "tick_ms": self.tick_ms},
                       items(), lead_s=self.radio_lead_s)
        raise BadRequest(f"mode {mode!r}: choose sketch or radio")

    async def play(self, ws) -> None:
        """`WS /api/play`: one job, from its request to its last sample, or until the page stops it."""
        from starlette.websockets import WebSocketDisconnect

        await ws.accept()
        try:
            request = await ws.receive_json()
            if not isinstance(request, dict):
                raise BadRequest("the play request must be a JSON object")
            job = self.job(request)
        except WebSocketDisconnect:
            return
        except (WavegenError, json.JSONDecodeError, KeyError) as e:
            await _send_error(ws, e)
            return
        stop = threading.Event()  # tells the worker thread to end
        job_task = asyncio.create_task(self._run(ws, job, stop))
        watcher = asyncio.create_task(_until_stop(ws))
        try:
            await asyncio.wait({job_task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.set()
            for task in (job_task, watcher):
                task.cancel()
            failed, _ = await asyncio.gather(job_task, watcher, return_exceptions=True)
            if isinstance(failed, Exception) and not isinstance(failed, WebSocketDisconnect | OSError):
                log.error("a play job failed", exc_info=failed)
            with contextlib.suppress(Exception):
                await ws.close()

    async def _run(self, ws, job: Job, stop: threading.Event) -> None:
        """Wait for a core, then send the job's stream; cancelled when the page stops it."""
        from wavegen.audio import to_int16

        loop = asyncio.get_running_loop()
        items: asyncio.Queue = asyncio.Queue()
        t0, sent = time.perf_counter(), 0
        async with self.cores.slot(lambda ahead: ws.send_json({"type": "queued", "position": ahead})):
            await ws.send_json(job.start)
            thread = threading.Thread(target=_produce, args=(job, lambda x: loop.call_soon_threadsafe(
                items.put_nowait, x), stop), daemon=True, name="wavegen-studio-job")
            thread.start()
            try:
                while (item := await items.get()) is not _DONE:
                    if isinstance(item, Exception):
                        await _send_error(ws, item)
                        return
                    if item[0] == "ticks":
                        await ws.send_json({"type": "ticks", "start": item[1], "text": item[2]})
                    else:
                        await ws.send_bytes(to_int16(item[1])[0].astype("<i2").tobytes())
                        sent += len(item[1])
                await ws.send_json({"type": "done", "samples": sent, "wall_s": time.perf_counter() - t0})
            finally:  # the core is free only when the worker is (it ends within a tick of `stop`)
                stop.set()
                await asyncio.shield(asyncio.to_thread(thread.join))


async def _until_stop(ws) -> None:
    """Return when the page sends {"type": "stop"} or the socket closes (the tab closed)."""
    with contextlib.suppress(Exception):
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                if json.loads(msg.get("text") or "{}").get("type") == "stop":
                    return


async def _send_error(ws, e: Exception) -> None:
    with contextlib.suppress(Exception):
        await ws.send_json({"type": "error", "error": str(e) if isinstance(e, WavegenError) else
                            f"the request is not valid JSON ({e})"})
        await ws.close()


# ------------------------------------------------------------------------------------------------
# the app


async def read_body(request, limit: int = MAX_UPLOAD_BYTES) -> bytes:
    """The request's body, refused (413) past `limit` bytes without reading the rest."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"{int(declared) / 2**20:.1f} MiB is more than the {limit // 2**20} MiB the studio takes", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"more than the {limit // 2**20} MiB the studio takes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request) -> dict:
    data = await read_body(request)
    try:
        body = json.loads(data or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"the request is not valid JSON ({e})") from None
    if not isinstance(body, dict):
        raise BadRequest("the request must be a JSON object")
    return body


def create_app(studio: Studio):
    """The ASGI app of `studio`: the page, its static files and the API (docs/studio.md)."""
    from fastapi import FastAPI
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = FastAPI(title="wavegen studio", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.studio = studio

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, e: BadRequest):
        return JSONResponse({"error": str(e), **e.extra}, status_code=e.status)

    @app.exception_handler(WavegenError)
    async def wavegen_error(request: Request, e: WavegenError):
        return JSONResponse({"error": str(e)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)  # 404 and 405 too: {"error": ...} like every refusal
    async def http_error(request: Request, e: StarletteHTTPException):
        return JSONResponse({"error": f"{request.url.path}: {e.detail}"}, status_code=e.status_code)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, e: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"error": f"internal error: {type(e).__name__} (see the server's log)"}, status_code=500)

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html")

    @app.get("/listen", include_in_schema=False)
    async def listen():
        return FileResponse(STATIC / "listen.html")

    @app.get("/api/info")
    async def info():
        return studio.info()

    @app.post("/api/parse")
    async def parse(request: Request):
        text = _string(await read_json(request), "text")
        return sketch_json(parse_sketch(text), text)

    @app.post("/api/text")
    async def text(request: Request):
        return sketch_json(sketch_from_notes(await read_json(request)))

    @app.post("/api/open")
    async def open_(request: Request, name: str = "file"):
        kt, warnings = open_file(name, await read_body(request), studio.tick_ms)
        return {**sketch_json(kt), "warnings": warnings}

    @app.post("/api/export.mid")
    async def export_midi(request: Request):
        from wavegen.notes.midi import keytext_to_midi, midi_bytes

        kt = parse_sketch(_string(await read_json(request), "text"))
        return Response(midi_bytes(keytext_to_midi(kt)), media_type="audio/midi",
                        headers={"Content-Disposition": 'attachment; filename="sketch.mid"'})

    @app.post("/api/render")
    async def render(request: Request):
        body = await read_json(request)
        return Response(await run_in_threadpool(studio.render, body), media_type="audio/wav")

    @app.post("/api/spectrogram")
    async def spectrogram(request: Request):
        return await run_in_threadpool(spectrogram_json, await read_body(request))

    @app.post("/api/compose")
    async def compose(request: Request):
        body = await read_json(request)
        return await run_in_threadpool(studio.compose, body)

    @app.websocket("/api/play")
    async def play(ws: WebSocket):
        await studio.play(ws)

    from wavegen.studio.listening import router

    app.include_router(router(studio.work))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


@dataclass
class Served:
    url: str

    def summary(self) -> str:
        return f"studio at {self.url} stopped"


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def listening_socket(host: str, port: int):
    """A socket bound to host:port for uvicorn, or a one-line error (the port in use, an unknown host)."""
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        raise WavegenError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e}); choose another "
                           "--port (or --host)") from None
    return sock


def serve(*, host: str = "127.0.0.1", port: int = 8765, model: str | None = None, composer: str | None = None,
          work: str = "studio", jobs: int | None = None, open_browser: bool = False,
          warn: Callable[[str], None] = lambda m: None, note: Callable[[str], None] = lambda m: None) -> Served:
    """`wavegen studio`: load the models, then serve the page until Ctrl-C."""
    import uvicorn

    try:
        import websockets  # noqa: F401  (uvicorn's WebSocket protocol: without it /api/play cannot open)
    except ImportError:
        raise WavegenError("the studio needs the websockets package: .venv/bin/pip install websockets") from None
    if not 0 < port < 65536:
        raise WavegenError(f"--port {port}: choose a port from 1 to 65535")
    if host not in LOCAL_HOSTS:
        warn(f"--host {host}: anyone who can reach this address can use the studio (and this machine's cores); "
             "the default, 127.0.0.1, is this machine only")
    sock = listening_socket(host, port)  # before the models load: a port in use is said at once
    try:
        note("loading the models")
        studio = Studio(work, model=model, composer=composer, jobs=jobs)
        url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
        config = uvicorn.Config(create_app(studio), log_level="warning", lifespan="off", timeout_graceful_shutdown=2,
                                ws="websockets", ws_max_size=2 * MAX_TEXT_CHARS)
        server = uvicorn.Server(config)
        if open_browser:
            import webbrowser

            threading.Thread(target=lambda: (time.sleep(1.0), webbrowser.open(url)), daemon=True).start()
        note(f"the studio is at {url} ({studio.loaded.path.name}, {studio.cores.n} job(s) at once); Ctrl-C stops it")
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn shut down cleanly, then raised the Ctrl-C again: the usual way to stop
            pass
    finally:
        sock.close()
    return Served(url)
