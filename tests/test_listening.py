"""The listening test: a test folder made from an evaluation's clips, answers checked and appended, the summary's
numbers against hand-computed ones, and the studio's API over it (nothing revealed, nothing outside the work folder)."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from wavegen.audio import read_audio, write_audio
from wavegen.errors import WavegenError
from wavegen.studio import listening as L

SR = 8_000
SKETCHES = ("scale-c", "two-voices", "bwv244.37")


def sine(freq: float, seconds: float, amp: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture
def evaluation(tmp_path: Path) -> Path:
    """What `wavegen evaluate -o ev/report.json` leaves: the report and, per clip, both takes (the generated one
    louder and with a buzz, as a WaveNet's might be)."""
    ev = tmp_path / "ev"
    pieces = ev / "report-pieces"
    pieces.mkdir(parents=True)
    for i, name in enumerate(SKETCHES):
        write_audio(pieces / f"{name}-reference.wav", sine(220 * (i + 1), 3.0, 0.2), SR)
        write_audio(pieces / f"{name}-generated.wav", sine(220 * (i + 1), 3.0, 0.5) + sine(3000, 3.0, 0.05), SR)
        (pieces / f"{name}.png").write_bytes(b"png")
    write_audio(pieces / "lonely-generated.wav", sine(440, 1.0, 0.3), SR)  # no reference: not a pair
    (ev / "report.json").write_text(json.dumps({"pieces": [{"piece": "bwv244.37"}]}))
    return ev


@pytest.fixture
def made(evaluation: Path, tmp_path: Path) -> Path:
    L.make_test(evaluation / "report.json", tmp_path / "work" / "listening" / "t1", seconds=2.0, name="first")
    return tmp_path / "work" / "listening" / "t1"


def test_make_test_writes_opaque_clips_of_one_length_at_the_same_rms(evaluation, tmp_path):
    out = tmp_path / "work" / "listening" / "t1"
    made = L.make_test(evaluation / "report.json", out, seconds=2.0, name="first")
    assert (made.pairs, made.name, made.path) == (3, "first", out)
    test = json.loads((out / "test.json").read_text())
    assert test["name"] == "first" and test["source"] == str(evaluation / "report.json")
    assert sorted(p["sketch"] for p in test["pairs"]) == sorted(SKETCHES)
    files = sorted(p.name for p in (out / "clips").iterdir())
    assert files == sorted(f for p in test["pairs"] for f in p["clips"].values()) and len(set(files)) == 6
    for f in files:  # the name says nothing: no sketch, no role
        assert re.fullmatch(r"[0-9a-f]{16}\.wav", f)
    for p in test["pairs"]:
        (ren, sr1), (net, sr2) = (read_audio(out / "clips" / p["clips"][r]) for r in ("rendering", "wavenet"))
        assert sr1 == sr2 == SR and len(ren) == len(net) == 2 * SR
        rms = [float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) for x in (ren, net)]
        assert rms[0] == pytest.approx(rms[1], rel=2e-3)
        assert rms[0] == pytest.approx(0.2 / np.sqrt(2), rel=0.05)  # the quieter clip's level: nothing made louder
        assert abs(ren[-1]) < 1e-3 and abs(net[-1]) < 1e-3  # cut short: both end in the fade, not in a click
    assert [p.name for p in out.parent.iterdir()] == ["t1"]  # no temporary folder left beside it
    assert "3 pairs" in made.summary()


def test_whole_clips_and_the_folder_as_evaluation(evaluation, tmp_path):
    made = L.make_test(evaluation, tmp_path / "whole", seconds=None)
    test = json.loads((tmp_path / "whole" / "test.json").read_text())
    assert made.pairs == 3 and all(p["seconds"] == pytest.approx(3.0) for p in test["pairs"])
    p = next(p for p in test["pairs"] if p["sketch"] == "scale-c")
    ren, _ = read_audio(tmp_path / "whole" / "clips" / p["clips"]["rendering"])
    np.testing.assert_allclose(ren, sine(220, 3.0, 0.2), atol=1e-4)  # the quieter clip as it was, unfaded
    assert L.default_out(evaluation / "report.json") == Path("studio") / "listening" / "ev"


def test_make_test_refuses_without_pairs_or_onto_a_full_folder(evaluation, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(WavegenError, match="no pairs of clips"):
        L.make_test(tmp_path / "empty", tmp_path / "out")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("mine")
    for source in (evaluation, tmp_path / "empty"):  # refused before the clips are even looked for
        with pytest.raises(WavegenError, match="give another --out or delete it"):
            L.make_test(source, tmp_path / "taken")
    assert not (tmp_path / "out").exists() and (tmp_path / "taken" / "x").read_text() == "mine"
    (tmp_path / "free").mkdir()  # an empty folder is fine
    assert L.make_test(evaluation, tmp_path / "free").pairs == 3


def test_a_failure_half_way_leaves_nothing(evaluation, tmp_path, monkeypatch):
    import wavegen.audio

    calls = []

    def failing(path, audio, sr):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device", str(path))
        return real(path, audio, sr)

    real = wavegen.audio.write_audio
    monkeypatch.setattr(wavegen.audio, "write_audio", failing)
    (tmp_path / "tests").mkdir()
    with pytest.raises(OSError):
        L.make_test(evaluation, tmp_path / "tests" / "t")
    assert len(calls) == 3 and list((tmp_path / "tests").iterdir()) == []


def answer(test_dir: Path, pair: str = "p1", **kw) -> dict:
    a = {"listener": "abc123", "pair": pair, "order": "rendering-first", "picked_as_rendering": "A", "correct": True,
         "preferred": "none"}
    return {**a, **kw}


def test_record_answer_appends_checked_lines(made):
    assert L.record_answer(made, answer(made)) == 1
    assert L.record_answer(made, answer(made, "p2", order="wavenet-first", correct=True, picked_as_rendering="B",
                                        preferred="wavenet", time="2025-01-01T00:00:00+00:00")) == 2
    lines = [json.loads(x) for x in (made / "answers.jsonl").read_text().splitlines()]
    assert [x["pair"] for x in lines] == ["p1", "p2"] and lines[1]["time"] == "2025-01-01T00:00:00+00:00"
    assert set(lines[0]) == set(L.ANSWER_FIELDS)
    bad = [answer(made, "p9"), answer(made, order="first"), answer(made, picked_as_rendering="C"),
           answer(made, correct="yes"), answer(made, correct=False), answer(made, preferred="both"),
           answer(made, listener="../x"), answer(made, listener=""), answer(made, time="yesterday"),
           {**answer(made), "extra": 1}, {k: v for k, v in answer(made).items() if k != "pair"}]
    for a in bad:
        with pytest.raises(WavegenError, match="answer"):
            L.record_answer(made, a)
    assert len((made / "answers.jsonl").read_text().splitlines()) == 2  # none of them written


def seven_of_ten(made: Path) -> None:
    """Ten listeners, one answer each to p1: seven pick the rendering; three prefer the WaveNet. One repeat."""
    for i in range(10):
        ok = i < 7
        L.record_answer(made, answer(made, listener=f"l{i}", order="wavenet-first", picked_as_rendering="B" if ok else "A",
                                     correct=ok, preferred="wavenet" if i % 3 == 0 else "rendering"))
    L.record_answer(made, answer(made, listener="l9"))  # l9 again, now right: not counted


def test_summary_numbers(made):
    seven_of_ten(made)
    with open(made / "answers.jsonl", "a") as f:
        f.write('{"torn": \n')
    s = L.summary(made, listener="l0")
    d = s.data
    assert (d["answers"], d["correct"], d["listeners"], d["share"]) == (10, 7, 10, 0.7)
    assert d["ci95"] == pytest.approx([0.3475, 0.9333], abs=1e-4)  # Clopper-Pearson for 7 of 10, from tables
    assert d["p_value"] == pytest.approx(0.34375)  # 2 * (C(10,0)+C(10,1)+C(10,2)+C(10,3)) / 2**10 = 2 * 176 / 1024
    assert d["preferred"] == {"wavenet": 4, "rendering": 6, "none": 0} and d["share_preferring_wavenet"] == 0.4
    assert (d["repeats_ignored"], d["unreadable_lines"], d["you"]) == (1, 1, {"answers": 1, "correct": 1})
    assert {r["id"]: (r["answers"], r["correct"], r["preferred_wavenet"]) for r in d["per_pair"]} == \
        {"p1": (10, 7, 4), "p2": (0, 0, 0), "p3": (0, 0, 0)}
    text = s.summary()
    assert "7 of 10" in text and "0.35 to 0.93" in text and "0.5 = they cannot tell" in text
    assert "not told apart from guessing" in text
    assert json.loads(L.summary(made, as_json=True).summary())["correct"] == 7


def test_summary_without_answers(made):
    s = L.summary(made)
    assert (s.data["answers"], s.data["share"], s.data["ci95"]) == (0, None, None)
    assert "no answers yet" in s.summary()


@pytest.fixture
def client(made):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    app = FastAPI()
    app.include_router(L.router(made.parent.parent))
    return TestClient(app)


def test_api_lists_tests_and_hides_which_clip_is_which(client, made):
    (made.parent / ".t2.abc.tmp").mkdir()  # a test being written is no test
    assert client.get("/api/listening").json() == {"tests": [{"name": "t1", "title": "first", "pairs": 3}]}
    r = client.get("/api/listening/t1")
    assert r.status_code == 200
    assert not re.search("rendering|wavenet|reference|generated", r.text, re.I)
    body = r.json()
    truth = {p["id"]: p["clips"] for p in json.loads((made / "test.json").read_text())["pairs"]}
    assert sorted(p["pair"] for p in body["pairs"]) == ["p1", "p2", "p3"]
    for p in body["pairs"]:
        assert {p["A"]["file"], p["B"]["file"]} == set(truth[p["pair"]].values())
        assert p["A"]["url"] == f"/api/listening/t1/clip/{p['A']['file']}"
    # over many requests each order turns up, of the pairs and of the clips in a pair: the order says nothing
    shown = [client.get("/api/listening/t1").json()["pairs"] for _ in range(40)]
    assert len({s[0]["pair"] for s in shown}) > 1
    assert {next(p["A"]["file"] for p in s if p["pair"] == "p1") for s in shown} == set(truth["p1"].values())
    clip = client.get(body["pairs"][0]["A"]["url"])
    assert clip.status_code == 200 and clip.headers["content-type"] == "audio/wav" and clip.content[:4] == b"RIFF"
    assert "last-modified" not in clip.headers and "etag" not in clip.headers


def test_api_refuses_unknown_names_and_paths(client, made, tmp_path):
    (made.parent.parent / "secret.wav").write_bytes(b"RIFF")
    L.make_test(tmp_path / "ev", tmp_path / "outside", seconds=1.0)
    (made.parent / "linked").symlink_to(tmp_path / "outside")  # a test folder, but outside the work folder
    outside_clip = json.loads((tmp_path / "outside" / "test.json").read_text())["pairs"][0]["clips"]["rendering"]
    assert [t["name"] for t in client.get("/api/listening").json()["tests"]] == ["t1"]
    # these reach the router, which finds no such test or clip
    for url in ("/api/listening/nope", "/api/listening/%2E%2E", "/api/listening/%2E%2E/summary",
                "/api/listening/%2E%2E/clip/secret.wav", "/api/listening/t1/clip/nope.wav",
                "/api/listening/t1/clip/%2E%2E", "/api/listening/t1%00/summary", "/api/listening/linked",
                f"/api/listening/linked/clip/{outside_clip}", f"/api/listening/t1/clip/{outside_clip}"):
        r = client.get(url)
        assert r.status_code == 404 and set(r.json()) == {"error"} and "\n" not in r.json()["error"], url
    # an encoded slash is decoded before routing: no route takes it (the server's own 404)
    for url in ("/api/listening/..%2Fx", "/api/listening/t1/clip/..%2F..%2Fsecret.wav",
                "/api/listening/t1/clip/..%2Ftest.json", "/api/listening/..%2Flistening%2Ft1/summary",
                "/api/listening/t1/clip/%2Fetc%2Fpasswd"):
        r = client.get(url)
        assert r.status_code == 404 and "Traceback" not in r.text and r.content[:4] != b"RIFF", url
    assert client.post("/api/listening/%2E%2E/answer", json={}).status_code == 404


def test_api_answers_and_summary(client, made):
    pairs = {p["pair"]: p for p in client.get("/api/listening/t1").json()["pairs"]}
    truth = {p["id"]: p["clips"] for p in json.loads((made / "test.json").read_text())["pairs"]}
    # the page sends the file it played as A; here the WaveNet's, so the rendering was B
    right = {"listener": "me", "pair": "p1", "a": truth["p1"]["wavenet"], "rendering_pick": truth["p1"]["rendering"],
             "preferred": truth["p1"]["wavenet"]}
    assert client.post("/api/listening/t1/answer", json=right).json() == {"ok": True, "answered": 1}
    wrong = {**right, "pair": "p2", "a": truth["p2"]["rendering"], "rendering_pick": truth["p2"]["wavenet"],
             "preferred": "none"}
    assert {pairs["p2"]["A"]["file"], pairs["p2"]["B"]["file"]} == set(truth["p2"].values())
    assert client.post("/api/listening/t1/answer", json=wrong).json() == {"ok": True, "answered": 2}
    lines = [json.loads(x) for x in (made / "answers.jsonl").read_text().splitlines()]
    assert {k: lines[0][k] for k in ("listener", "pair", "order", "picked_as_rendering", "correct", "preferred")} == {
        "listener": "me", "pair": "p1", "order": "wavenet-first", "picked_as_rendering": "B", "correct": True,
        "preferred": "wavenet"}
    assert (lines[1]["order"], lines[1]["picked_as_rendering"]) == ("rendering-first", "B")
    assert lines[1]["correct"] is False and lines[1]["preferred"] == "none"
    for bad in ({**right, "pair": "p9"}, {**right, "rendering_pick": "../test.json"}, {**right, "preferred": "A"},
                {**right, "a": truth["p2"]["rendering"]}, {**right, "listener": "a b"}, {**right, "extra": 1},
                {k: v for k, v in right.items() if k != "a"}, [1, 2]):
        r = client.post("/api/listening/t1/answer", json=bad)
        assert r.status_code == 400 and set(r.json()) == {"error"}, bad
    r = client.post("/api/listening/t1/answer", content=b"{not json")
    assert r.status_code == 400 and set(r.json()) == {"error"}
    assert client.post("/api/listening/nope/answer", json=right).status_code == 404
    s = client.get("/api/listening/t1/summary", params={"listener": "me"}).json()
    assert (s["answers"], s["correct"], s["share"], s["you"]) == (2, 1, 0.5, {"answers": 2, "correct": 1})
    assert len((made / "answers.jsonl").read_text().splitlines()) == 2


def test_cli_make_and_summary(evaluation, tmp_path, monkeypatch, capsys):
    from wavegen.cli import common

    main = importlib.import_module("wavegen.cli.main")  # the module (wavegen.cli.main is also its function's name)

    if not any(c[0].startswith("listening-test ") for c in main.COMMANDS):  # until main.py imports it
        commands = list(main.COMMANDS)
        monkeypatch.setattr(common, "COMMANDS", commands)
        monkeypatch.setattr(main, "COMMANDS", commands)
        name = "wavegen.cli.listening"
        importlib.reload(sys.modules[name]) if name in sys.modules else importlib.import_module(name)
    monkeypatch.setitem(main.GROUPS, "listening-test", "build a listening test from an evaluation, or sum up its answers")
    monkeypatch.chdir(tmp_path)
    assert main.main(["listening-test", "make", "ev/report.json", "--seconds", "1.5"]) == 0
    test = json.loads((tmp_path / "studio" / "listening" / "ev" / "test.json").read_text())
    assert len(test["pairs"]) == 3 and test["pairs"][0]["seconds"] == 1.5
    assert main.main(["listening-test", "make", "ev", "--out", "studio/listening/ev"]) == 2
    assert "give another --out or delete it" in capsys.readouterr().err
    assert main.main(["listening-test", "make", "ev", "--seconds", "-1"]) == 2
    assert main.main(["listening-test", "make", "ev", "--out", "whole", "--seconds", "all"]) == 0
    assert json.loads((tmp_path / "whole" / "test.json").read_text())["pairs"][0]["seconds"] == 3.0
    assert main.main(["listening-test", "summary", "studio/listening/ev"]) == 0
    assert "no answers yet" in capsys.readouterr().out
