"""Benchmark the studio as a listener meets it: time to first sound, and whether playback ever waits.

    .venv/bin/python scripts/bench_studio.py                     # the 10 s prelude, 3 takes
    .venv/bin/python scripts/bench_studio.py --sketch data/sketches/scale-c4-two-octaves.txt --json
    .venv/bin/python scripts/bench_studio.py --repeats 1 --screenshot docs/images/studio.png

Starts `wavegen studio --jobs 1` (the shipped model) in its own process pinned to one core, and drives
the page in headless Chromium (Debian's, through Playwright; pinned to the other cores where there
are any): the sketch goes into the 88-key text, play is pressed, and the page's own measurements are
read back (window.studio): from pressing play to the first audio received, to the first sound
scheduled (the page starts playback only once the rest of the take will arrive before it is needed,
see shouldStart in studio.js), to the last sample; and the stalls, chunks that came after their turn
to play. Prints a table (medians of --repeats takes, and every take) and, with --json, the same as JSON.
The CPU and its vector extensions head the report: generation speed, and so the first sound, depends
on them (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wavegen import machine  # noqa: E402

SKETCH = ROOT / "data" / "examples" / "prelude-c.txt"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, core: int, work: Path, checkpoint: str | None) -> subprocess.Popen:
    cmd = [str(ROOT / ".venv" / "bin" / "wavegen"), "studio", "--jobs", "1", "--port", str(port), "--work", str(work)]
    if checkpoint:
        cmd += ["--checkpoint", checkpoint]
    proc = subprocess.Popen(cmd, preexec_fn=lambda: os.sched_setaffinity(0, {core}), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench_studio: the studio did not start: {proc.stderr.read().strip()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("bench_studio: the studio did not answer within 120 s")


def take(page, url: str, text: str) -> dict:
    """One press of play on a freshly loaded page; the page's measurements."""
    page.goto(url)
    page.wait_for_function("document.getElementById('status').textContent.startsWith('ready')", timeout=60_000)
    page.fill("#text", text)
    page.wait_for_function("window.studio.state.notes.length > 0", timeout=20_000)
    page.click("#play")
    page.wait_for_function("window.studio.done", timeout=600_000)
    page.wait_for_function("!window.studio.playing", timeout=600_000)
    page.wait_for_function("document.getElementById('spectrogram').dataset.drawn === '1'", timeout=60_000)
    return page.evaluate("({firstChunkMs: studio.firstChunkMs, firstSoundMs: studio.firstSoundMs, doneMs: "
                         "studio.doneMs, stalls: studio.stalls, nSamples: studio.nSamples, sampleRate: studio.sampleRate})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sketch", type=Path, default=SKETCH, help=f"88-key text to play (default {SKETCH.relative_to(ROOT)})")
    ap.add_argument("--checkpoint", help="another WaveNet (default: the shipped one)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chromium", default=os.environ.get("WAVEGEN_CHROMIUM") or shutil.which("chromium"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--screenshot", type=Path, metavar="PNG", help="save the page after the last take (the README's)")
    args = ap.parse_args()
    if not args.chromium:
        raise SystemExit("bench_studio: no chromium (install Debian's chromium or give --chromium PATH)")
    from playwright.sync_api import sync_playwright

    cores = sorted(os.sched_getaffinity(0))
    server_core, client_cores = cores[0], set(cores[1:]) or {cores[0]}
    text = args.sketch.read_text()
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory() as work:
        server = start_server(port, server_core, Path(work), args.checkpoint)
        try:
            os.sched_setaffinity(0, client_cores)  # the browser inherits it
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, headless=True,
                                            args=["--autoplay-policy=no-user-gesture-required", "--no-sandbox"])
                page = browser.new_page(viewport={"width": 1400, "height": 860})
                takes = [take(page, url, text) for _ in range(args.repeats)]
                if args.screenshot:  # from the start of the piece
                    page.evaluate("(s => { s.scrollLeft = 0; s.dispatchEvent(new Event('scroll')); })"
                                  "(document.getElementById('roll-scroll'))")
                    page.wait_for_timeout(500)
                    page.screenshot(path=str(args.screenshot))
                browser.close()
        finally:
            server.terminate()
            server.wait(10)
    for t in takes:
        seconds = t["nSamples"] / t["sampleRate"]
        t["seconds"] = seconds
        t["generation_x_real_time"] = seconds / max((t["doneMs"] - t["firstChunkMs"]) / 1000, 1e-9)
    name, flags = machine.cpu()
    med = {k: statistics.median(t[k] for t in takes) for k in ("firstChunkMs", "firstSoundMs", "doneMs",
                                                                  "generation_x_real_time")}
    report = {"cpu": name, "vector_extensions": [f for f in ("avx512f", "avx2") if f in flags],
              "server_core": server_core, "sketch": str(args.sketch), "seconds": takes[0]["seconds"],
              "median": med, "max_stalls": max(t["stalls"] for t in takes), "takes": takes}
    print(f"{name} ({', '.join(report['vector_extensions']) or 'no AVX2'}); studio on core {server_core}, "
          f"--jobs 1; {args.sketch.name}: {report['seconds']:.1f} s; {args.repeats} takes")
    print("| take | first audio received (s) | first sound (s) | last sample (s) | generation (x real time) | stalls |")
    print("|---|---|---|---|---|---|")
    rows = [("median", med, report["max_stalls"])] + [(str(i + 1), t, t["stalls"]) for i, t in enumerate(takes)]
    for label, t, stalls in rows:
        print(f"| {label} | {t['firstChunkMs'] / 1000:.2f} | {t['firstSoundMs'] / 1000:.2f} | {t['doneMs'] / 1000:.1f} "
              f"| {t['generation_x_real_time']:.2f} | {stalls} |")
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
