"""The studio's HTTP and WebSocket API (docs/studio.md), bad input included, through Starlette's TestClient
on a tiny WaveNet: every answer is JSON or the bytes it promises, every refusal a 4xx with one line."""

from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pytest
import soundfile as sf
from conftest import note_track, smf
from fastapi.testclient import TestClient
from test_generate import TINY, make_checkpoint

from wavegen.studio.server import MAX_UPLOAD_BYTES, RADIO_LEAD_S, Studio, create_app

NINE = "H " * 9  # middle C (key 39) held for nine ticks: 0.5 s sounding, 1.0 s with the release tail


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    ckpt = make_checkpoint(tmp_path_factory.mktemp("ck") / "tiny")
    return Studio(tmp_path_factory.mktemp("work"), model=str(ckpt), composer="composer-lstm", jobs=1)


@pytest.fixture(scope="module")
def client(studio):
    with TestClient(create_app(studio), raise_server_exceptions=False) as c:
        yield c


def refused(r, status: int = 400, words: str = "") -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"error"} and "\n" not in body["error"] and "Traceback" not in body["error"]
    assert words in body["error"], body["error"]
    return body["error"]


def test_info_names_the_model_the_composer_and_the_limits(client):
    info = client.get("/api/info").json()
    assert info["model"] == "tiny" and info["sample_rate_hz"] == 16_000 and info["tick_ms"] == 50.0
    assert info["composer"] == {"name": "composer-lstm", "styles": ["bach"], "tick_ms": 50.0}
    assert info["jobs"] == 1 and info["limits"]["max_upload_bytes"] == MAX_UPLOAD_BYTES


def test_the_page_and_its_files_are_served_and_nothing_beside_them(client):
    assert client.get("/").status_code == 200 and "<html" in client.get("/").text.lower()
    assert client.get("/static/studio.js").status_code == 200
    for path in ("/static/../server.py", "/static/%2e%2e/server.py", "/static/nothing.js", "/api/nothing"):
        refused(client.get(path), 404, "Not Found")
    assert "<html" in client.get("/listen").text.lower()
    assert client.get("/api/listening").json() == {"tests": []}  # the listening test's router is in


def test_parse_gives_the_runs_of_ticks_of_each_key(client):
    body = client.post("/api/parse", json={"text": "HLO HLO  Q "}).json()
    assert body["n_ticks"] == 4 and body["tick_ms"] == 50.0 and body["text"] == "HLO HLO  Q "
    assert body["notes"] == [{"key": 39, "start": 0, "end": 2}, {"key": 43, "start": 0, "end": 2},
                             {"key": 46, "start": 0, "end": 2}, {"key": 48, "start": 3, "end": 4}]


def test_a_text_error_gives_its_line_and_column(client):
    r = client.post("/api/parse", json={"text": "HL \nH\x01 "})
    refused(r, 400, "2:2")
    assert (r.json()["line"], r.json()["column"]) == (2, 2)
    refused(client.post("/api/parse", json={"text": ""}), 400, "empty")
    refused(client.post("/api/parse", content=b"{not json"), 400, "not valid JSON")
    refused(client.post("/api/parse", json=["HL "]), 400, "JSON object")


def test_notes_become_text_and_touching_runs_one_note(client):
    body = client.post("/api/text", json={"tick_ms": 50, "n_ticks": 4, "meta": {"style": "bach"},
                                          "notes": [{"key": 39, "start": 0, "end": 1}, {"key": 39, "start": 1, "end": 2}]}).json()
    assert body["text"] == "{tick_ms=50 ticks=4 style=bach}\nH H   \n"
    assert body["notes"] == [{"key": 39, "start": 0, "end": 2}]
    longer = client.post("/api/text", json={"tick_ms": 50, "n_ticks": 1, "notes": [{"key": 0, "start": 2, "end": 3}]})
    assert longer.json()["n_ticks"] == 3  # the sketch grows to its last note


@pytest.mark.parametrize("note", [{"key": 88, "start": 0, "end": 1}, {"key": 3, "start": 2, "end": 2},
                                  {"key": 3, "start": -1, "end": 2}, {"key": 3.5, "start": 0, "end": 1},
                                  {"key": 3, "start": 0}, {"key": 3, "start": 0, "end": 10**9}, "H"])
def test_a_note_that_is_not_one_is_refused(client, note):
    refused(client.post("/api/text", json={"tick_ms": 50, "notes": [note]}), 400, "notes[0]")


def test_a_header_field_that_cannot_be_written_is_refused(client):
    refused(client.post("/api/text", json={"tick_ms": 50, "meta": {"style": "two words"}, "notes": []}), 400, "meta")
    refused(client.post("/api/text", json={"notes": []}), 400, "tick_ms")


def test_open_reads_text_and_midi_from_the_body(client):
    text = client.post("/api/open?name=a.txt", content=b"{tick_ms=50}\nHL HL ").json()
    assert text["notes"] == [{"key": 39, "start": 0, "end": 2}, {"key": 43, "start": 0, "end": 2}]
    midi = client.post("/api/open?name=song.mid", content=smf([note_track(pitch=60, length=480)])).json()
    # half a second at 120 bpm: ten ticks sounding, written as nine (the format's one tick shorter)
    assert midi["notes"] == [{"key": 39, "start": 0, "end": 9}] and midi["text"].startswith("{tick_ms=50 ticks=9}")


def test_a_file_that_cannot_be_opened_is_named_with_the_reason(client):
    refused(client.post("/api/open?name=song.mid", content=b"garbage"), 400, "song.mid: not a MIDI file")
    refused(client.post("/api/open?name=notes.doc", content=b"HL "), 400, "notes.doc: unknown kind of file")
    refused(client.post("/api/open?name=a.txt", content=b"\xff\xfe"), 400, "a.txt: not text")
    refused(client.post("/api/open?name=a.txt", content=b""), 400, "a.txt: the file is empty")
    # a name is a label, never a path: nothing is read from the disk
    err = refused(client.post("/api/open?name=../../etc/passwd.txt", content=b"H\x02 "), 400, "passwd.txt:1:2")
    assert "etc" not in err


def test_a_body_past_the_limit_is_refused_before_it_is_read(client):
    refused(client.post("/api/open?name=a.txt", content=b" " * (MAX_UPLOAD_BYTES + 1)), 413, "MiB")


def test_export_midi_holds_the_sketchs_notes(client):
    from wavegen.notes.midi import read_midi_bytes

    r = client.post("/api/export.mid", json={"text": NINE})
    assert r.status_code == 200 and r.headers["content-type"] == "audio/midi"
    notes = read_midi_bytes(r.content).notes
    assert [(n.pitch, round(n.start, 3), round(n.end, 3)) for n in notes] == [(60, 0.0, 0.5)]


def test_render_is_the_soundfont_rendering_at_the_models_rate(client):
    r = client.post("/api/render", json={"text": NINE})
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    audio, sr = sf.read(io.BytesIO(r.content))
    assert sr == 16_000 and len(audio) == 16_000 and np.abs(audio[:8000]).max() > 0.05


def test_the_spectrogram_is_bright_on_the_key_that_sounds(client):
    sr = 16_000
    t = np.arange(sr) / sr
    buf = io.BytesIO()
    sf.write(buf, 0.5 * np.sin(2 * np.pi * 440.0 * t), sr, format="WAV")
    body = client.post("/api/spectrogram", content=buf.getvalue()).json()
    rows = np.frombuffer(base64.b64decode(body["data"]), dtype=np.uint8).reshape(88, body["n_frames"])
    assert body["hop_s"] == pytest.approx(0.016) and rows.shape[1] > 50
    assert int(np.argmax(rows[:, rows.shape[1] // 2])) == 48  # A4, key 48
    refused(client.post("/api/spectrogram", content=b"RIFF...."), 400, "not a WAV")


def test_compose_writes_a_new_sketch_or_continues_the_prime(client):
    new = client.post("/api/compose", json={"seconds": 1, "seed": 3}).json()
    assert new["n_ticks"] == 20 and new["meta"]["style"] == "bach" and new["sections"] == []
    prime = "HLO HLO HLO HLO "
    more = client.post("/api/compose", json={"seconds": 1, "prime": prime, "form": "AB"}).json()
    assert more["n_ticks"] == 24 and more["text"].split("\n")[1].startswith(prime)
    assert more["sections"] == [["A", 4, 14], ["B", 14, 24]]  # in ticks of the whole text
    unseeded = client.post("/api/compose", json={"seconds": 1, "seed": None}).json()
    assert unseeded["text"] == client.post("/api/compose", json={"seconds": 1, "seed": 0}).json()["text"]
    refused(client.post("/api/compose", json={"style": "jazz"}), 400, "jazz")
    refused(client.post("/api/compose", json={"style_b": "jazz", "blend": 0.5}), 400, "jazz")
    refused(client.post("/api/compose", json={"style_b": "bach", "blend": 2}), 400, "blend")
    refused(client.post("/api/compose", json={"form": "A1"}), 400, "A1")
    refused(client.post("/api/compose", json={"seconds": -1}), 400, "seconds")
    refused(client.post("/api/compose", json={"prime": "{tick_ms=20}\nH "}), 400, "20 ms")


def test_an_internal_error_is_one_line_and_no_traceback(client, studio, monkeypatch):
    monkeypatch.setattr(studio, "compose", lambda body: 1 / 0)
    refused(client.post("/api/compose", json={}), 500, "internal error: ZeroDivisionError")


# playing: one WebSocket per job, against the app served by uvicorn as `wavegen studio` serves it


@pytest.fixture(scope="module")
def play_url(studio):
    import socket
    import threading

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(studio), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"ws://127.0.0.1:{sock.getsockname()[1]}/api/play"
    server.should_exit = True
    thread.join(10)


def connect(url):
    from websockets.sync.client import connect

    return connect(url, open_timeout=10, close_timeout=5)


def receive_all(ws, stop_after_bytes: int | None = None) -> tuple[list[dict], bytes]:
    """Messages until done or error (or `stop_after_bytes` of audio): (the JSON ones, the audio)."""
    events, audio = [], bytearray()
    for m in ws:
        if isinstance(m, bytes):
            audio += m
            if stop_after_bytes is not None and len(audio) >= stop_after_bytes:
                break
            continue
        events.append(json.loads(m))
        if events[-1]["type"] in ("done", "error"):
            break
    return events, bytes(audio)


def start(ws, request: dict) -> dict:
    ws.send(json.dumps(request))
    return json.loads(ws.recv(timeout=30))


def test_play_streams_the_take_that_generate_makes(play_url, studio):
    from wavegen.audio import to_int16
    from wavegen.notes import text as T
    from wavegen.synth.denoise import DEFAULT_DEPTH_DB, denoise
    from wavegen.synth.generate import play

    with connect(play_url) as ws:
        first = start(ws, {"mode": "sketch", "text": NINE, "temperature": 0.8, "min_p": 0.1, "seed": 5})
        events, audio = receive_all(ws)
    assert first == {"type": "start", "sample_rate_hz": 16_000, "n_samples": 16_000, "tick_ms": 50.0}
    assert events[-1]["type"] == "done" and events[-1]["samples"] == 16_000
    pcm = np.frombuffer(audio, dtype="<i2")
    played = play(studio.loaded.model, 16_000, sample_rate_hz=16_000, sketch=T.parse(NINE), engine="fast",
                  temperature=0.8, min_p=0.1, seed=5)[0]
    expected = denoise(played, 16_000, T.parse(NINE).notes(), DEFAULT_DEPTH_DB,  # as `wavegen generate` writes it
                       studio.loaded.timbre_played())
    assert np.max(np.abs(pcm.astype(int) - to_int16(expected)[0].astype(int))) <= 1
    with connect(play_url) as ws:  # denoise 0: the take as the network played it
        start(ws, {"mode": "sketch", "text": NINE, "temperature": 0.8, "min_p": 0.1, "seed": 5, "denoise": 0})
        _, audio = receive_all(ws)
    assert np.array_equal(np.frombuffer(audio, dtype="<i2"), to_int16(played)[0])


@pytest.mark.parametrize("request_, words", [
    ({"mode": "sketch", "text": "HL\x01 "}, "the sketch:1:3"),
    ({"mode": "sketch", "text": "{tick_ms=20}\nH "}, "20 ms"),
    ({"mode": "sketch", "text": ""}, "empty"),
    ({"mode": "sketch", "text": "H ", "temperature": -1}, "temperature"),
    ({"mode": "sketch", "text": "H ", "min_p": 1}, "min_p"),
    ({"mode": "sketch", "text": "H ", "denoise": 61}, "denoise"),
    ({"mode": "sketch", "text": "H ", "style": "jazz"}, "jazz"),
    ({"mode": "dance"}, "mode 'dance'"),
    ({"mode": "radio", "style": "jazz"}, "jazz"),
    ({"mode": "sketch", "text": "H ", "seed": "x"}, "seed"),
    (["H "], "JSON object"),
])
def test_a_bad_play_request_gets_one_error_line(play_url, request_, words):
    with connect(play_url) as ws:
        first = start(ws, request_)
        events, audio = receive_all(ws)
    assert audio == b"" and first["type"] == "error" and words in first["error"] and not events


def long_sketch(seconds: float = 60.0) -> str:
    return "H " * int(seconds * 20)


def test_a_second_job_waits_for_the_core_and_starts_when_the_first_is_stopped(play_url):
    with connect(play_url) as first:
        assert start(first, {"mode": "sketch", "text": long_sketch()})["type"] == "start"
        with connect(play_url) as second:
            assert start(second, {"mode": "sketch", "text": NINE}) == {"type": "queued", "position": 0}
            with connect(play_url) as third:
                assert start(third, {"mode": "sketch", "text": NINE}) == {"type": "queued", "position": 1}
                first.send(json.dumps({"type": "stop"}))
                events, audio = receive_all(second)
                assert events[0]["type"] == "start" and events[-1]["type"] == "done" and len(audio) == 2 * 16_000
                events, audio = receive_all(third)  # moved up the queue, then played
                assert [e["type"] for e in events] == ["queued", "start", "done"] and events[0]["position"] == 0


def test_closing_the_socket_frees_the_core(play_url):
    with connect(play_url) as ws:
        start(ws, {"mode": "sketch", "text": long_sketch(600)})
        receive_all(ws, stop_after_bytes=1)
    t0 = time.perf_counter()
    with connect(play_url) as ws:  # jobs=1: behind a job still running, it would wait ten minutes
        events, audio = receive_all(ws) if start(ws, {"mode": "sketch", "text": NINE}) else ([], b"")
    assert events[-1]["type"] == "done" and len(audio) == 2 * 16_000 and time.perf_counter() - t0 < 30


def test_the_radio_composes_and_plays_until_stopped(play_url):
    from wavegen.notes import text as T

    with connect(play_url) as ws:
        assert start(ws, {"mode": "radio", "seed": 2, "prime": "HLO HLO "})["n_samples"] is None
        ticks, audio = [], bytearray()
        while len(audio) < 2 * 16_000 * 2:  # two seconds
            m = ws.recv(timeout=30)
            if isinstance(m, bytes):
                audio += m
            else:
                ticks.append(json.loads(m))
        ws.send(json.dumps({"type": "stop"}))
    assert ticks and all(t["type"] == "ticks" for t in ticks)
    assert ticks[0]["start"] == 2 and ticks[1]["start"] == 2 + 20  # after the prime, a second at a time
    assert T.parse(ticks[0]["text"]).n_ticks == 20


def test_the_radio_keeps_only_a_few_seconds_ahead_of_real_time(play_url, studio):
    """Without end, the radio must not run ahead of the listener: past `radio_lead_s` of audio ahead of
    the wall clock since its first sound it waits (else a fast core would fill the page with minutes)."""
    studio.radio_lead_s = 0.5
    try:
        with connect(play_url) as ws:
            start(ws, {"mode": "radio", "seed": 3})
            audio, t0 = 0, None
            while audio < 6 * 16_000 * 2:  # six seconds
                m = ws.recv(timeout=30)
                if isinstance(m, bytes):
                    t0 = time.perf_counter() if t0 is None else t0
                    audio += len(m)
            elapsed = time.perf_counter() - t0
            ws.send(json.dumps({"type": "stop"}))
    finally:
        studio.radio_lead_s = RADIO_LEAD_S
    # the sixth second is sent only once the wall clock is within 0.5 s of the fifth's end (one chunk, 1 s)
    assert elapsed >= 6 - 1 - 0.5 - 0.2, elapsed


# `wavegen studio` on the command line: a port in use is one line before the models load; Ctrl-C stops it
# cleanly (exit 0, no traceback)


def test_a_port_in_use_is_one_line_at_once(capsys):
    import socket

    from wavegen.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        t0 = time.perf_counter()
        code = main(["studio", "--port", str(taken.getsockname()[1]), "--checkpoint", "no-such-model"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "cannot listen there" in err and "another --port" in err
    assert "no-such-model" not in err and time.perf_counter() - t0 < 5  # refused before any model is looked for


def test_ctrl_c_stops_the_studio_cleanly(tmp_path, studio):
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "wavegen", "studio", "--host", "0.0.0.0", "--port", str(port),
                             "--checkpoint", str(studio.loaded.path), "--work", str(tmp_path / "w")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            try:
                info = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=1).read())
                break
            except OSError:
                time.sleep(0.2)
        assert info["model"] == "tiny"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "stopped" in out, (out, err)
    assert "Traceback" not in err and "warning: --host 0.0.0.0: anyone who can reach" in err


def test_a_model_of_several_harpsichords_plays_and_renders_the_one_chosen(tmp_path):
    import torch

    from wavegen.config import load_config
    from wavegen.nn import checkpoint
    from wavegen.nn.model import WaveNet
    from wavegen.notes import text as T
    from wavegen.notes.render import TIMBRES, render_notes

    cfg = load_config(TINY, ["model.n_timbres=2"])
    torch.manual_seed(0)
    model = WaveNet(cfg.model, 800)
    with torch.no_grad():
        for ly in model.layers:
            ly.timbre.weight.normal_(0, 2.0)  # two timbres the model tells apart
    meta = {"sample_rate_hz": 16_000, "tick_ms": 50.0, "samples_per_tick": 800, "step": 0, "styles": [],
            "timbres": ["fluidr3", "timgm6mb"]}
    ckpt = checkpoint.save(tmp_path / "timbres", weights=model.state_dict(), config=cfg, meta=meta)
    studio = Studio(tmp_path / "work", model=str(ckpt), composer="composer-lstm", jobs=1)
    with TestClient(create_app(studio), raise_server_exceptions=False) as c:
        assert c.get("/api/info").json()["timbres"] == ["fluidr3", "timgm6mb"]
        got = sf.read(io.BytesIO(c.post("/api/render", json={"text": NINE, "timbre": "timgm6mb"}).content))[0]
        want = render_notes(T.parse(NINE).notes(), sample_rate_hz=16_000, soundfont=TIMBRES["timgm6mb"](),
                            min_seconds=0.45).audio
        assert np.abs(got - want).max() < 1e-4  # 16-bit WAV
        first = sf.read(io.BytesIO(c.post("/api/render", json={"text": NINE}).content))[0]
        assert np.abs(first - got).max() > 0.01  # no timbre: the model's first, another SoundFont
        refused(c.post("/api/render", json={"text": NINE, "timbre": "virginal"}), 400, "plays fluidr3, timgm6mb")

    def take(timbre):
        job = studio.job({"mode": "sketch", "text": NINE, "seed": 1, **({"timbre": timbre} if timbre else {})})
        return np.concatenate([a for kind, a in job.items if kind == "audio"])

    assert np.array_equal(take(None), take("fluidr3")) and not np.array_equal(take("fluidr3"), take("timgm6mb"))
