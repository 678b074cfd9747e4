"""The listening test: can a listener tell the WaveNet's take from the SoundFont rendering of the same notes?

`make_test` cuts the pairs of clips that `wavegen evaluate` wrote (REPORT-pieces/NAME-generated.wav beside
NAME-reference.wav) into a test folder: the clips under opaque names, both clips of a pair at the same
length and the same RMS, and test.json, the one place that says which clip is which. The studio page
(/listen, `router`) plays each pair as A and B in a random order and asks which is the rendering and which
the listener prefers; the answers are JSON lines in the test folder, and `summary` says how often the real
rendering was picked: the share told apart, with its exact binomial (Clopper-Pearson) interval and the
p-value against guessing. A share of 0.5 means the listeners cannot tell the two apart. The server keeps
no state: the page sends back the clip it took for the rendering, and correctness is worked out from
test.json, so the page never knows the answer.

A test folder::

    test.json       name, created, source report, pairs: [{id, sketch, clips: {rendering, wavenet}}]
    clips/*.wav     16 hex digits each: the name says nothing of which clip it is
    answers.jsonl   one answer a line, appended (record_answer)
"""

import json
import math
import os
import random
import re
import secrets
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from wavegen.errors import WavegenError
from wavegen.files import check_output_dir, json_text, usual_permissions, write_text_atomic

TEST_FILE = "test.json"
ANSWERS_FILE = "answers.jsonl"
CLIPS = "clips"
LISTENING = "listening"  # the tests' folder inside the studio's work folder
DEFAULT_WORK = Path("studio")
DEFAULT_SECONDS = 8.0
FADE_SECONDS = 0.05  # a clip cut short ends in this fade (the same on both clips), not in a click
ROLES = ("rendering", "wavenet")
ORDERS = ("rendering-first", "wavenet-first")
PREFERENCES = ("rendering", "wavenet", "none")
ANSWER_FIELDS = ("time", "listener", "pair", "order", "picked_as_rendering", "correct", "preferred")
CLIP_NAME = re.compile(r"[0-9a-f]{16}\.wav")
LISTENER = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_BODY_BYTES = 4096
_append_lock = threading.Lock()


@dataclass
class Made:
    """`wavegen listening-test make`: the test folder written."""

    path: Path
    name: str
    pairs: int
    seconds: float  # the length of the shortest clip
    unmatched: list[str] = field(default_factory=list)  # sketches whose levels could not be matched (a silent clip)

    def summary(self) -> str:
        lines = [f"wrote listening test {self.name!r} in {self.path}: {self.pairs} pairs of clips of "
                 f"{self.seconds:.1f} s or more, each pair at the same RMS"]
        if self.unmatched:
            lines.append(f"levels not matched (a silent clip): {', '.join(self.unmatched)}")
        if self.path.parent.name == LISTENING:
            lines.append(f"serve it with `wavegen studio --work {self.path.parent.parent}` and open /listen")
        else:
            lines.append(f"the studio serves tests in WORK/{LISTENING}/: move it there to play it at /listen")
        return "\n".join(lines)


def _pieces_dir(evaluation: Path) -> Path:
    """The REPORT-pieces folder of an evaluation: REPORT.json, its folder, or the -pieces folder itself."""
    if evaluation.is_file():
        if evaluation.suffix.lower() != ".json":
            raise WavegenError(f"{evaluation}: give the REPORT.json of a `wavegen evaluate` run, or its folder")
        return evaluation.with_name(evaluation.stem + "-pieces")
    if not evaluation.is_dir():
        raise WavegenError(f"{evaluation}: no such file or folder")
    if any(evaluation.glob("*-generated.wav")):
        return evaluation
    found = sorted(p.with_name(p.stem + "-pieces") for p in evaluation.glob("*.json")
                   if p.with_name(p.stem + "-pieces").is_dir())
    if len(found) > 1:
        raise WavegenError(f"{evaluation}: holds {len(found)} evaluations ({', '.join(p.name for p in found)}); "
                           "give the REPORT.json of one")
    return found[0] if found else evaluation / "REPORT-pieces"


def find_pairs(evaluation: str | os.PathLike) -> list[tuple[str, Path, Path]]:
    """(name, reference, generated) of each clip `wavegen evaluate` wrote both ways, in name order."""
    pieces = _pieces_dir(Path(evaluation))
    pairs = []
    if pieces.is_dir():
        for gen in sorted(pieces.glob("*-generated.wav")):
            name = gen.name[: -len("-generated.wav")]
            if (ref := pieces / f"{name}-reference.wav").is_file():
                pairs.append((name, ref, gen))
    if not pairs:
        raise WavegenError(f"{evaluation}: no pairs of clips (NAME-generated.wav beside NAME-reference.wav in "
                           f"{pieces}); give the REPORT.json of a `wavegen evaluate` run or its folder")
    return pairs


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2))) if len(x) else 0.0


def match_pair(rendering: np.ndarray, wavenet: np.ndarray, n: int, sr: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Both clips cut to `n` samples (a fade at the cut when either was longer) and scaled to the same RMS,
    the quieter clip's: a listener must not tell them apart by level, and scaling the louder one down never
    clips. False when a clip is silent (its level cannot be matched; both are left as they are)."""
    out = []
    for x in (rendering, wavenet):
        y = np.array(x[:n], dtype=np.float64)
        if len(x) > n:
            f = min(n, int(FADE_SECONDS * sr))
            y[n - f:] *= np.linspace(1.0, 0.0, f)
        out.append(y)
    levels = [_rms(y) for y in out]
    if min(levels) < 1e-6:
        return out[0].astype(np.float32), out[1].astype(np.float32), False
    target = min(levels)
    a, b = ((y * (target / lv)).astype(np.float32) for y, lv in zip(out, levels))
    return a, b, True


def default_out(evaluation: str | os.PathLike, work: str | os.PathLike = DEFAULT_WORK) -> Path:
    """studio/listening/<the evaluation's folder name>."""
    p = Path(evaluation)
    folder = p.parent if p.is_file() else p
    if folder.name.endswith("-pieces"):
        folder = folder.parent
    return Path(work) / LISTENING / (folder.resolve().name or "evaluation")


def make_test(evaluation: str | os.PathLike, out: str | os.PathLike | None = None, *,
              seconds: float | None = DEFAULT_SECONDS, name: str | None = None) -> Made:
    """`wavegen listening-test make`: a test folder `out` (default studio/listening/<evaluation folder>) from
    the pairs of an evaluation (its REPORT.json or folder): the first `seconds` of each clip (None: whole),
    both clips of a pair cut to the same length and scaled to the same RMS (see match_pair: the level is
    no clue), at their own sample rate, under random names. Written into a hidden sibling folder and
    renamed into place at the end, so no half-written test is ever seen. `out` must be new or empty."""
    from wavegen.audio import read_audio, write_audio

    if seconds is not None and not (0 < seconds < math.inf):
        raise WavegenError(f"--seconds {seconds}: must be a positive number")
    out_dir = Path(out) if out is not None else default_out(evaluation)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise WavegenError(f"{out_dir}: exists and is not an empty folder; give another --out or delete it")
    pairs = find_pairs(evaluation)
    check_output_dir(out_dir.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        usual_permissions(tmp)
        (tmp / CLIPS).mkdir()
        rows, unmatched, shortest = [], [], math.inf
        for i, (sketch, ref_path, gen_path) in enumerate(pairs, 1):
            ref, sr = read_audio(ref_path)
            gen, gen_sr = read_audio(gen_path)
            if sr != gen_sr:
                raise WavegenError(f"{gen_path}: {gen_sr} Hz, but {ref_path} is {sr} Hz; a pair must share its rate")
            n = min(len(ref), len(gen), round(seconds * sr) if seconds is not None else len(ref))
            if n == 0:
                raise WavegenError(f"{gen_path}: an empty clip")
            rendering, wavenet, matched = match_pair(ref, gen, n, sr)
            clips = {"rendering": rendering, "wavenet": wavenet}
            if not matched:
                unmatched.append(sketch)
            files = {role: secrets.token_hex(8) + ".wav" for role in ROLES}
            for role in random.sample(ROLES, 2):  # in no fixed order: not even the files' times tell
                write_audio(tmp / CLIPS / files[role], clips[role], sr)
            rows.append({"id": f"p{i}", "sketch": sketch, "seconds": n / sr, "sample_rate_hz": sr,
                         "rms_matched": matched, "clips": files})
            shortest = min(shortest, n / sr)
        test = {"name": name or out_dir.name, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "source": str(evaluation), "seconds": seconds,
                "levels": "both clips of a pair at the same RMS, the quieter clip's", "pairs": rows}
        write_text_atomic(tmp / TEST_FILE, json_text(test, indent=1) + "\n")
        if out_dir.exists() and any(out_dir.iterdir()):
            raise WavegenError(f"{out_dir}: was written to meanwhile; give another --out or delete it")
        os.replace(tmp, out_dir)  # onto nothing, or onto an empty folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Made(out_dir, test["name"], len(rows), shortest, unmatched)


def load_test(test_dir: str | os.PathLike) -> dict:
    """test.json of a test folder, checked: pairs with unique ids and two clips each under opaque names."""
    path = Path(test_dir) / TEST_FILE
    try:
        test = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WavegenError(f"{test_dir}: not a listening test (no {TEST_FILE}); make one with "
                           "`wavegen listening-test make`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WavegenError(f"{path}: cannot be read ({e})") from None
    pairs = test.get("pairs") if isinstance(test, dict) else None
    ok = isinstance(pairs, list) and all(
        isinstance(p, dict) and isinstance(p.get("id"), str) and isinstance(p.get("clips"), dict)
        and all(isinstance(p["clips"].get(r), str) and CLIP_NAME.fullmatch(p["clips"][r]) for r in ROLES)
        for p in pairs)
    if not ok or len({p["id"] for p in pairs}) != len(pairs):
        raise WavegenError(f"{path}: not a listening test's {TEST_FILE} (its pairs are malformed)")
    return test


def _one_line(x: Any) -> str:
    return repr(x) if len(repr(x)) <= 40 else repr(x)[:37] + "..."


def check_answer(test: dict, answer: dict) -> dict:
    """One answer checked against `test`: every field of ANSWER_FIELDS (time may be missing: now), each from
    its allowed values, the pair one of the test's, and `correct` what order and pick make it."""
    if not isinstance(answer, dict):
        raise WavegenError("an answer is a JSON object")
    unknown = sorted(set(answer) - set(ANSWER_FIELDS))
    missing = [k for k in ANSWER_FIELDS if k not in answer and k != "time"]
    if unknown or missing:
        raise WavegenError(f"answer: {'unknown fields ' + ', '.join(unknown) if unknown else ''}"
                           f"{'; ' if unknown and missing else ''}{'missing ' + ', '.join(missing) if missing else ''}")
    a = {"time": answer.get("time") or datetime.now(timezone.utc).isoformat(timespec="seconds"), **answer}
    a = {k: a[k] for k in ANSWER_FIELDS}
    try:
        datetime.fromisoformat(a["time"])
    except (TypeError, ValueError):
        raise WavegenError(f"answer: time {_one_line(a['time'])} is not an ISO 8601 time") from None
    if not isinstance(a["listener"], str) or not LISTENER.fullmatch(a["listener"]):
        raise WavegenError(f"answer: listener {_one_line(a['listener'])} is not 1 to 64 letters, digits, - or _")
    if a["pair"] not in {p["id"] for p in test["pairs"]}:
        raise WavegenError(f"answer: no pair {_one_line(a['pair'])} in this test")
    for key, allowed in (("order", ORDERS), ("picked_as_rendering", ("A", "B")), ("preferred", PREFERENCES)):
        if a[key] not in allowed:
            raise WavegenError(f"answer: {key} {_one_line(a[key])} is not one of {', '.join(allowed)}")
    if not isinstance(a["correct"], bool):
        raise WavegenError(f"answer: correct {_one_line(a['correct'])} is not true or false")
    if a["correct"] != ((a["order"] == "rendering-first") == (a["picked_as_rendering"] == "A")):
        raise WavegenError("answer: correct does not follow from order and picked_as_rendering")
    return a


def record_answer(test_dir: str | os.PathLike, answer: dict) -> int:
    """Check `answer` (check_answer) and append it to answers.jsonl as one line, flushed and synced (one
    write of a whole line: two writers never interleave). Returns the answers recorded so far."""
    a = check_answer(load_test(test_dir), answer)
    path = Path(test_dir) / ANSWERS_FILE
    with _append_lock, open(path, "a", encoding="utf-8") as f:
        f.write(json_text(a) + "\n")
        f.flush()
        os.fsync(f.fileno())
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def answer_from_picks(test: dict, *, listener: Any, pair: Any, a: Any, rendering_pick: Any, preferred: Any) -> dict:
    """The answer the page's picks make: `a` is the clip file it played as A, `rendering_pick` the file it
    took for the rendering, `preferred` a file or "none". Correctness comes from test.json alone."""
    row = next((p for p in test["pairs"] if p["id"] == pair), None)
    if row is None:
        raise WavegenError(f"no pair {_one_line(pair)} in this test")
    files = {row["clips"][r]: r for r in ROLES}
    for key, value in (("a", a), ("rendering_pick", rendering_pick)):
        if value not in files:
            raise WavegenError(f"{key}: {_one_line(value)} is not a clip of pair {pair}")
    if preferred != "none" and preferred not in files:
        raise WavegenError(f"preferred: {_one_line(preferred)} is neither a clip of pair {pair} nor \"none\"")
    return {"listener": listener, "pair": pair,
            "order": "rendering-first" if files[a] == "rendering" else "wavenet-first",
            "picked_as_rendering": "A" if rendering_pick == a else "B",
            "correct": files[rendering_pick] == "rendering",
            "preferred": files.get(preferred, "none")}


def read_answers(test_dir: str | os.PathLike, test: dict) -> tuple[list[dict], int]:
    """The answers of a test that still check out, and how many lines did not (torn, edited, stale)."""
    path = Path(test_dir) / ANSWERS_FILE
    if not path.is_file():
        return [], 0
    good, bad = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            good.append(check_answer(test, json.loads(line)))
        except (ValueError, WavegenError):
            bad += 1
    return good, bad


@dataclass
class Summary:
    """`wavegen listening-test summary`: the test's numbers (`data`); summary() is its text, or its JSON."""

    data: dict
    as_json: bool = False

    def summary(self) -> str:
        return json_text(self.data, indent=1) if self.as_json else summary_text(self.data)


def summary(test_dir: str | os.PathLike, *, listener: str | None = None, as_json: bool = False) -> Summary:
    """How often the listeners told the WaveNet from the rendering: of n answers (each listener's first
    answer to each pair; a repeat after a reload would count one listener twice), k picked the real
    rendering. The share k/n, its 95 % Clopper-Pearson interval and the two-sided binomial p-value against
    0.5, which is what listeners who cannot tell them apart would score. Answers from one listener are not
    quite independent trials; the interval treats them so. Also the preferences, per pair counts and,
    given `listener`, that listener's own score."""
    test = load_test(test_dir)
    answers, bad = read_answers(test_dir, test)
    first: dict[tuple[str, str], dict] = {}
    for a in answers:
        first.setdefault((a["listener"], a["pair"]), a)
    counted = list(first.values())
    n, k = len(counted), sum(a["correct"] for a in counted)
    prefer = {p: sum(a["preferred"] == p for a in counted) for p in PREFERENCES}
    d: dict[str, Any] = {
        "test": test.get("name"), "pairs": len(test["pairs"]), "answers": n, "correct": k,
        "share": k / n if n else None, "ci95": None, "p_value": None,
        "listeners": len({a["listener"] for a in counted}),
        "preferred": prefer, "share_preferring_wavenet": prefer["wavenet"] / n if n else None,
        "repeats_ignored": len(answers) - n, "unreadable_lines": bad,
        "per_pair": [{"id": p["id"], "sketch": p.get("sketch"),
                      "answers": sum(a["pair"] == p["id"] for a in counted),
                      "correct": sum(a["pair"] == p["id"] and a["correct"] for a in counted),
                      "preferred_wavenet": sum(a["pair"] == p["id"] and a["preferred"] == "wavenet" for a in counted)}
                     for p in test["pairs"]],
    }
    if n:
        from scipy.stats import binomtest

        t = binomtest(k, n, 0.5)
        ci = t.proportion_ci(confidence_level=0.95, method="exact")
        d.update(ci95=[float(ci.low), float(ci.high)], p_value=float(t.pvalue))
    if listener is not None:
        mine = [a for a in counted if a["listener"] == listener]
        d["you"] = {"answers": len(mine), "correct": sum(a["correct"] for a in mine)}
    return Summary(d, as_json)


def summary_text(d: dict) -> str:
    """The summary as a few lines a reader (and a model card) can quote."""
    head = f"listening test {d['test']!r}: {d['pairs']} pairs"
    if not d["answers"]:
        return (f"{head}; no answers yet: open /listen in `wavegen studio` and play it, then run this again\n"
                "told apart = the real SoundFont rendering picked; 0.5 would mean the listeners cannot tell")
    lo, hi = d["ci95"]
    if lo > 0.5:
        verdict = "better than guessing: the listeners tell the WaveNet from the rendering"
    elif hi < 0.5:
        verdict = "worse than guessing: the listeners take the WaveNet for the rendering more often than not"
    else:
        verdict = "not told apart from guessing with these answers (0.5 lies in the interval)"
    p = d["preferred"]
    lines = [
        f"{head}, {d['answers']} answers from {d['listeners']} listener{'s' if d['listeners'] != 1 else ''}",
        f"told apart (picked the real SoundFont rendering): {d['correct']} of {d['answers']}, share {d['share']:.2f}, "
        f"95 % interval {lo:.2f} to {hi:.2f} (Clopper-Pearson), p = {d['p_value']:.3g} against chance",
        f"  0.5 = they cannot tell the two apart (they guess); 1 = they always can. So: {verdict}",
        f"preferred: the WaveNet {p['wavenet']}, the rendering {p['rendering']}, no preference {p['none']} "
        f"(share preferring the WaveNet {d['share_preferring_wavenet']:.2f})",
    ]
    if d["repeats_ignored"] or d["unreadable_lines"]:
        lines.append(f"not counted: {d['repeats_ignored']} repeated answers (a listener's first answer to a pair "
                     f"counts), {d['unreadable_lines']} unreadable lines")
    lines.append("per pair (answers, told apart, preferred the WaveNet):")
    lines += [f"  {r['id']} {r['sketch']}: {r['answers']}, {r['correct']}, {r['preferred_wavenet']}"
              for r in d["per_pair"]]
    return "\n".join(lines)


def _tests(work: Path) -> dict[str, Path]:
    """The test folders under work/listening/ by name: only folders with a test.json that lie inside `work`
    (a link out of it is no test), never a hidden (half-written) one."""
    root = work / LISTENING
    inside = work.resolve()
    found = {}
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return {}
    for e in entries:
        d = root / e.name
        if not e.name.startswith(".") and d.is_dir() and (d / TEST_FILE).is_file() \
                and d.resolve().is_relative_to(inside):
            found[e.name] = d
    return found


def router(work: str | os.PathLike):
    """The studio's listening-test API over the tests in work/listening/ (the page, static/listen.html, is the
    server's /listen).

    Every path it touches is one it listed itself (a test folder's name, a clip named in test.json):
    what the browser sends is looked up, never joined into a path. Errors are JSON {"error": "one line"}
    with a 4xx status (500 for a broken test.json), never a traceback."""
    from fastapi import APIRouter, Request
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool

    work = Path(work)
    r = APIRouter()

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message.splitlines()[0] if message else "error"}, status_code=status)

    def open_test(name: str) -> tuple[Path, dict] | JSONResponse:
        d = _tests(work).get(name)
        if d is None:
            return error(404, f"no listening test {_one_line(name)}")
        try:
            return d, load_test(d)
        except WavegenError as e:
            return error(500, f"listening test {name}: {e}")

    @r.get("/api/listening")
    def tests():
        rows = []
        for name, d in _tests(work).items():
            try:
                t = load_test(d)
            except WavegenError:
                continue
            rows.append({"name": name, "title": str(t.get("name") or name), "pairs": len(t["pairs"])})
        return {"tests": rows}

    @r.get("/api/listening/{name}")
    def pairs(name: str):
        got = open_test(name)
        if isinstance(got, JSONResponse):
            return got
        _, t = got
        rng = random.SystemRandom()
        shown = []
        for p in rng.sample(t["pairs"], len(t["pairs"])):
            a, b = rng.sample([p["clips"][role] for role in ROLES], 2)
            shown.append({"pair": p["id"], "A": {"file": a, "url": f"/api/listening/{name}/clip/{a}"},
                          "B": {"file": b, "url": f"/api/listening/{name}/clip/{b}"}})
        return {"name": name, "title": str(t.get("name") or name), "pairs": shown}

    @r.get("/api/listening/{name}/clip/{file}")
    def clip(name: str, file: str):
        got = open_test(name)
        if isinstance(got, JSONResponse):
            return got
        d, t = got
        if file not in {p["clips"][role] for p in t["pairs"] for role in ROLES}:
            return error(404, f"no clip {_one_line(file)} in listening test {name}")
        path = d / CLIPS / file
        if not path.is_file() or path.resolve().parent != (d / CLIPS).resolve():
            return error(404, f"clip {file} of listening test {name} is missing")
        # the bytes alone: no Last-Modified or ETag, whose file times could tell the clips apart
        return Response(path.read_bytes(), media_type="audio/wav", headers={"Cache-Control": "no-store"})

    @r.post("/api/listening/{name}/answer")
    async def answer(name: str, request: Request):
        got = open_test(name)
        if isinstance(got, JSONResponse):
            return got
        d, t = got
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return error(413, f"an answer is at most {MAX_BODY_BYTES} bytes")
        try:
            picks = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error(400, "the answer is not JSON")
        keys = ("listener", "pair", "a", "rendering_pick", "preferred")
        if not isinstance(picks, dict) or set(picks) != set(keys):
            return error(400, f"the answer is a JSON object with exactly {', '.join(keys)}")
        try:
            n = await run_in_threadpool(record_answer, d, answer_from_picks(t, **picks))
        except WavegenError as e:
            return error(400, str(e))
        return {"ok": True, "answered": n}

    @r.get("/api/listening/{name}/summary")
    async def sums(name: str, listener: str | None = None):
        got = open_test(name)
        if isinstance(got, JSONResponse):
            return got
        d, _ = got
        try:
            s = await run_in_threadpool(summary, d, listener=listener)
        except WavegenError as e:
            return error(500, str(e))
        return JSONResponse(json.loads(json_text(s.data)))

    return r
