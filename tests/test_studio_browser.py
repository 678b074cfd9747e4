"""The studio's page in a real browser: draw three notes on the roll, play them through the WaveNet over
the WebSocket, and get the take back as audio and a spectrogram.

Runs the real server (uvicorn, the shipped model) on a free port in a thread and drives headless Chromium
with Playwright. Skips where Playwright or a Chromium is missing (fails in CI, which installs both) (Playwright's own browser download is not
used: set WAVEGEN_CHROMIUM to a browser's path, default the system's chromium). A screenshot of the page
goes to WAVEGEN_TEST_ARTIFACTS (default: the test's tmp folder)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CLICKED_KEYS = (39, 43, 46)  # C4, E4, G4: the characters H, L, O
CLICKED_TICKS = (1, 4, 7)


def chromium_path() -> str | None:
    path = os.environ.get("WAVEGEN_CHROMIUM")
    if path:
        return path if Path(path).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The studio served by uvicorn in a thread, as in `wavegen studio` (one job at once): (url, Studio)."""
    import uvicorn

    from wavegen.studio.server import Studio, create_app

    studio = Studio(tmp_path_factory.mktemp("studio-work"), jobs=1)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(studio), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the studio server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/", studio
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def studio_url(served):
    return served[0]


@pytest.fixture
def page(request):
    """The studio's page in headless Chromium, and the list of the page's uncaught errors."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    browser_path = chromium_path()
    if not browser_path:
        why = "no chromium to drive (install Debian's chromium or set WAVEGEN_CHROMIUM)"
        if os.environ.get("CI"):  # .ci/run installs it: there, a missing browser is a failure, not a skip
            pytest.fail(why)
        pytest.skip(why)
    url = request.getfixturevalue("studio_url")  # only now: the server loads the models
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, headless=True,
                                    args=["--autoplay-policy=no-user-gesture-required", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        yield page, errors
        browser.close()


def key_characters(text: str) -> str:
    """The keys of an 88-key text: every character after the header line but spaces and newlines."""
    body = text.split("\n", 1)[1] if text.startswith("{") else text
    return "".join(c for c in body if c not in " \r\n")


def test_three_notes_drawn_on_the_roll_play_as_a_take_with_its_spectrogram(page, tmp_path):
    page, errors = page
    page.wait_for_function("document.getElementById('status').textContent.startsWith('ready')", timeout=20_000)
    assert not page.is_visible("#timbre-row")  # the harpsichord menu only for a model of several
    assert page.input_value("#denoise") == "10" and page.text_content("#denoise-out") == "10"  # /api/info's default
    # the roll: key k is the row (87 - k) * 7 px from the top, tick t the column t * 12 px (the default zoom)
    rows, px_per_tick = 7, page.evaluate("window.studio.state.view.pxPerTick")
    for key, tick in zip(CLICKED_KEYS, CLICKED_TICKS, strict=True):
        page.click("#roll", position={"x": tick * px_per_tick + 3, "y": (87 - key) * rows + 3})
    page.wait_for_function(
        "(document.getElementById('text').value.split('\\n').slice(1).join('').match(/[^ ]/g) || []).length === 3",
        timeout=10_000)
    text = page.input_value("#text")
    assert key_characters(text) == "HLO", text

    page.click("#play")
    page.wait_for_function("window.studio.done", timeout=60_000)
    page.wait_for_function("isFinite(document.getElementById('take').duration)", timeout=10_000)
    studio = page.evaluate("({firstSoundMs: studio.firstSoundMs, stalls: studio.stalls, nSamples: studio.nSamples,"
                           " sampleRate: studio.sampleRate, samplesReceived: studio.samplesReceived})")
    # the sketch sounds to one tick after its last run (7..8 -> 0.45 s), then the 0.5 s release tail
    expected_s = (CLICKED_TICKS[-1] + 2) * 0.05 + 0.5
    assert abs(studio["nSamples"] / studio["sampleRate"] - expected_s) < 0.05, studio
    assert studio["samplesReceived"] == studio["nSamples"], studio
    assert studio["firstSoundMs"] is not None, studio
    duration = page.evaluate("document.getElementById('take').duration")
    assert abs(duration - studio["nSamples"] / studio["sampleRate"]) < 0.05, (duration, studio)

    page.wait_for_function("document.getElementById('spectrogram').dataset.drawn === '1'", timeout=20_000)
    page.wait_for_function("!window.studio.playing", timeout=20_000)
    artifacts = Path(os.environ.get("WAVEGEN_TEST_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(artifacts / "studio-three-notes.png"))
    assert not errors, errors


def test_undo_takes_back_a_header_changed_in_the_text(page):
    page, errors = page
    page.wait_for_function("document.getElementById('status').textContent.startsWith('ready')", timeout=20_000)
    before = page.input_value("#text")
    header, body = before.split("\n", 1)
    assert "tick_ms=50" in header and "title" not in header, header
    edited = header.replace("tick_ms=50", "tick_ms=100 title=minuet") + "\n" + body
    page.fill("#text", edited)  # as typed: the page parses the text after a pause
    page.wait_for_function("window.studio.state.meta.title === 'minuet' && window.studio.state.tickMs === 100",
                           timeout=10_000)
    assert page.evaluate("window.studio.state.fileBase") == "minuet"

    page.evaluate("document.activeElement.blur()")  # Ctrl+Z in the text is the textarea's own undo
    page.keyboard.press("Control+z")
    page.wait_for_function("!document.getElementById('text').value.split('\\n')[0].includes('minuet')",
                           timeout=10_000)
    restored = page.input_value("#text").split("\n", 1)[0]
    assert "tick_ms=50" in restored and "title" not in restored, restored
    assert page.evaluate("[window.studio.state.tickMs, window.studio.state.fileBase]") == [50, "sketch"]
    assert not errors, errors


def test_the_radio_keeps_its_last_minutes_in_roll_text_and_take(page, served, monkeypatch):
    """Past the studio's length limit the radio drops its oldest ticks (and their audio), so the text
    keeps following the roll and the page's memory stays flat (here with the limit cut to 4 s)."""
    from wavegen.studio import server

    page, errors = page
    monkeypatch.setattr(server, "MAX_SECONDS", 4.0)  # the page reads it from /api/info, the server refuses past it
    monkeypatch.setattr(served[1], "radio_lead_s", 1.0)  # the radio 1 s ahead, well within the 4 s window
    page.reload()
    page.wait_for_function("document.getElementById('status').textContent.startsWith('radio') ||"
                           " document.getElementById('status').textContent.startsWith('ready')", timeout=20_000)
    assert page.evaluate("window.studio.state.info.limits.max_seconds") == 4.0
    page.click("#radio")
    page.wait_for_function("window.studio.state.radioDropTicks >= 60", timeout=90_000)  # 3 s dropped
    page.wait_for_function(
        "(() => { const s = window.studio.state, m = document.getElementById('text').value.match(/ticks=(\\d+)/);"
        " return m && Number(m[1]) === s.nTicks; })()", timeout=10_000)
    got = page.evaluate("""(() => { const s = window.studio.state, live = s.live;
        const kept = live.chunks.reduce((n, c) => n + c.length, 0);
        return {pos: livePositionS(live), nTicks: s.nTicks, drop: s.radioDropTicks, kept, received: live.received,
                droppedSamples: live.droppedSamples, lastEnd: Math.max(...s.notes.map((n) => n.end)),
                firstStart: Math.min(...s.notes.map((n) => n.start)), error: document.getElementById('text-error').textContent,
                info: document.getElementById('roll-info').textContent}; })()""")
    assert 0 <= got["pos"] <= got["nTicks"] * 0.05, got  # the cursor in the kept window
    assert got["nTicks"] * 0.05 <= 4.0 and got["lastEnd"] <= got["nTicks"] and got["firstStart"] >= 0, got
    assert got["droppedSamples"] == got["drop"] * 800 and got["kept"] == got["received"] - got["droppedSamples"], got
    assert got["error"] == "" and "dropped" in got["info"], got
    page.click("#radio")  # stop: the take is the kept window's audio
    page.wait_for_function("isFinite(document.getElementById('take').duration)", timeout=10_000)
    assert page.evaluate("document.getElementById('take').duration") <= 4.0 + 1.0
    assert not errors, errors
