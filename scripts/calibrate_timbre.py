"""Calibrate the timbre distance (wavegen/evaluate/timbre.py): how far apart the harpsichords are on the same
notes, against how far a rendering moves under what a generated clip does to it (noise, a delay, mu-law, a
level, missing and wrong notes), and whether every copy is still nearest to its own harpsichord.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/calibrate_timbre.py [--seconds 15] [--json report.json]

The clips: every sketch of data/sketches and five test-split chorales of the Bach corpus, their first
`--seconds`, each rendered by every timbre (notes/render.py TIMBRES: fluidr3, musescore, musescore-coupled, timgm6mb). Prints
(a) each rendering against itself, (b) the matrix of distances between timbres on the same notes (the
median over the clips; rows the clip's timbre, columns the reference's), (c) each perturbation's distance
from its own timbre's rendering and its margin to the nearest other timbre, (d) which timbre each
perturbed copy is nearest to (confusion counts), and how alike the renderings are as waveforms. With
--json PATH (- for standard output) writes every clip's distances. Never imported by the package.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

from wavegen.audio import mu_law_decode, mu_law_encode
from wavegen.data.build import corpus_text
from wavegen.evaluate.timbre import BAND_DB, nearest_timbre
from wavegen.files import json_text, write_text_atomic
from wavegen.notes import text as T
from wavegen.notes.render import TIMBRES, render_notes, resolve_timbre
from wavegen.progress import Bar

ROOT = Path(__file__).resolve().parent.parent
CHORALES = ("bwv10.7", "bwv171.6", "bwv20.11", "bwv244.37", "bwv248.28")  # the test split's, in docs/evaluation
DROP_SHARE = 0.10  # notes left out
WRONG_SHARE = 0.05  # notes moved by one or two semitones
PERTURBATIONS = ("noise -60 dBFS", "noise -40 dBFS", "noise -30 dBFS", "delay 10 ms", "mu-law 256", "gain -6 dB",
                 "10 % notes missing", "5 % wrong notes", "all of these")
SAME_CORRELATION = 0.99
PROBES = ("silence", "white noise alone", "another clip's notes")


def clip_notes(notes: list[T.Note], seconds: float) -> list[T.Note]:
    return [T.Note(n.pitch, n.start, min(n.end, seconds)) for n in notes if n.start < seconds]


def note_errors(notes: list[T.Note], seed: int) -> tuple[list[T.Note], list[T.Note]]:
    """(the notes with DROP_SHARE of them left out, with WRONG_SHARE of them a semitone or two off); at
    least one note of each, chosen by `seed`."""
    rng = random.Random(seed)
    k = max(1, round(DROP_SHARE * len(notes)))
    gone = set(rng.sample(range(len(notes)), k)) if len(notes) > 1 else set()
    dropped = [n for i, n in enumerate(notes) if i not in gone]
    wrong = list(notes)
    for i in rng.sample(range(len(notes)), max(1, round(WRONG_SHARE * len(notes)))):
        n = wrong[i]
        wrong[i] = T.Note(min(108, max(21, n.pitch + rng.choice((-2, -1, 1, 2)))), n.start, n.end)
    return dropped, wrong


def white_noise(n: int, dbfs: float, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, 10 ** (dbfs / 20), n).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=15.0, help="of each clip (default 15)")
    ap.add_argument("--sample-rate", type=int, default=16_000)
    ap.add_argument("--sketches", default=str(ROOT / "data" / "sketches"), help="a folder of .txt sketches")
    ap.add_argument("--chorales", default=",".join(CHORALES), help="Bach corpus pieces, comma-separated")
    ap.add_argument("--band-db", type=float, default=BAND_DB, help=f"the cells compared (default {BAND_DB:g})")
    ap.add_argument("--json", metavar="PATH", help="also write every clip's distances (- for standard output)")
    args = ap.parse_args()
    sr = args.sample_rate
    timbres = {name: resolve_timbre(name)[1] for name in TIMBRES}
    clips = {p.stem: clip_notes(T.read_file(p).notes(), args.seconds)
             for p in sorted(Path(args.sketches).glob("*.txt"))}
    for piece in filter(None, args.chorales.split(",")):
        clips[piece] = clip_notes(corpus_text("bach", piece).notes(), args.seconds)

    rng = np.random.default_rng(0)
    rows: list[dict] = []  # one per (clip, timbre, copy): the distances to every timbre's rendering
    names = list(clips)
    renders: dict[tuple[str, str], np.ndarray] = {}
    with Bar("render", "clip") as bar:
        bar.start(len(clips) * len(timbres))
        for i, (clip, notes) in enumerate(clips.items()):
            end = max(n.end for n in notes)
            dropped, wrong = note_errors(notes, seed=i)
            for t, (timbre, sf) in enumerate(timbres.items()):
                def render(ns: list[T.Note], sf=sf) -> np.ndarray:
                    return render_notes(ns, sample_rate_hz=sr, soundfont=sf, min_seconds=end).audio

                audio = renders[timbre, clip] = render(notes)
                n = len(audio)
                both = render([x for x in wrong if x in dropped or x not in notes])
                copies = {
                    "itself": audio,
                    "noise -60 dBFS": audio + white_noise(n, -60, rng),
                    "noise -40 dBFS": audio + white_noise(n, -40, rng),
                    "noise -30 dBFS": audio + white_noise(n, -30, rng),
                    "delay 10 ms": np.concatenate([np.zeros(round(0.01 * sr), np.float32), audio])[:n],
                    "mu-law 256": mu_law_decode(mu_law_encode(audio)),
                    "gain -6 dB": audio * np.float32(10 ** (-6 / 20)),
                    "10 % notes missing": render(dropped),
                    "5 % wrong notes": render(wrong),
                    "all of these": mu_law_decode(mu_law_encode(np.float32(10 ** (-6 / 20)) * np.concatenate(
                        [np.zeros(round(0.01 * sr), np.float32), both[:n] + white_noise(n, -40, rng)])[:n])),
                }
                for kind, x in copies.items():
                    rows.append({"clip": clip, "timbre": timbre, "copy": kind, "x": x})
                bar.to(i * len(timbres) + t + 1)
    for i, clip in enumerate(names):
        for timbre in timbres:
            n = len(renders[timbre, clip])
            rows += [{"clip": clip, "timbre": timbre, "copy": "silence", "x": np.zeros(n, np.float32)},
                     {"clip": clip, "timbre": timbre, "copy": "white noise alone", "x": white_noise(n, -20, rng)},
                     {"clip": clip, "timbre": timbre, "copy": "another clip's notes",
                      "x": renders[timbre, names[(i + 1) % len(names)]]}]
    with Bar("distances", "copy") as bar:
        bar.start(len(rows))
        for j, row in enumerate(rows):
            refs = {t: renders[t, row["clip"]] for t in timbres}
            row["nearest"], row["distances"] = nearest_timbre(row.pop("x"), refs, sr, band_db=args.band_db)
            bar.to(j + 1)

    tn = list(timbres)
    # timbres whose renderings are one waveform at another level (correlation SAME_CORRELATION or more on the
    # median clip) are one harpsichord: no timbre measure can tell them apart, so the margins are also taken
    # against the other harpsichords only
    corr = {(a, b): float(np.median([np.corrcoef(renders[a, c], renders[b, c])[0, 1] for c in names]))
            for a in tn for b in tn}
    same = {a: {b for b in tn if corr[a, b] >= SAME_CORRELATION} for a in tn}
    level = {t: float(np.median([20 * np.log10(np.sqrt(np.mean(renders[t, c] ** 2)) + 1e-12) for c in names]))
             for t in tn}

    def own(kind: str) -> np.ndarray:
        return np.array([r["distances"][r["timbre"]] for r in rows if r["copy"] == kind])

    def margin(kind: str, others) -> np.ndarray:  # the nearest other timbre's distance less the own one's
        return np.array([min(d for t, d in r["distances"].items() if t in others(r["timbre"]))
                         - r["distances"][r["timbre"]] for r in rows if r["copy"] == kind])

    print(f"{len(clips)} clips ({len(clips) - len(args.chorales.split(','))} sketches, chorales {args.chorales}), "
          f"first {args.seconds:g} s, {sr} Hz; timbres {', '.join(tn)}; cells within {args.band_db:g} dB")
    print("waveform correlation, median over clips: "
          + ", ".join(f"{a}/{b} {corr[a, b]:.4f}" for k, a in enumerate(tn) for b in tn[k + 1:]))
    print("level, median RMS over clips: " + ", ".join(f"{t} {v:.1f} dBFS" for t, v in level.items()))
    groups = sorted({"+".join(sorted(same[t])) for t in tn})
    print(f"harpsichords (timbres correlating >= {SAME_CORRELATION}): {', '.join(groups)}")
    print(f"(a) a rendering against itself: max {own('itself').max():.3f} dB")
    matrix = {a: {b: float(np.median([r["distances"][b] for r in rows if r["copy"] == "itself" and r["timbre"] == a]))
                  for b in tn} for a in tn}
    lowest = {a: {b: float(np.min([r["distances"][b] for r in rows if r["copy"] == "itself" and r["timbre"] == a]))
                  for b in tn} for a in tn}
    print("(b) clip's timbre (rows) vs reference's (columns), dB: median over clips (lowest)")
    print("    " + " " * 10 + "".join(f"{b:>18}" for b in tn))
    for a in tn:
        print(f"    {a:<10}" + "".join(f"{matrix[a][b]:>11.2f} ({lowest[a][b]:4.2f})" for b in tn))
    print("(c, d) a copy of a rendering: distance to its own timbre's rendering (median, max); margin to the "
          "nearest other timbre and to the nearest other harpsichord (min over clips); how many are nearest their "
          "own timbre, their own harpsichord; confusion (rows: the copy's timbre, counts of the nearest)")
    print(f"    {'copy':<22} {'median':>6} {'max':>6} {'margin':>7} {'harpsi':>7}  {'timbre':>7} {'harpsi':>7}")
    summary = {}
    for kind in ("itself", *PERTURBATIONS, *PROBES):
        d = own(kind)
        m = margin(kind, lambda t: [x for x in tn if x != t])
        mh = margin(kind, lambda t: [x for x in tn if x not in same[t]] or [x for x in tn if x != t])
        confusion = {a: {b: sum(r["timbre"] == a and r["nearest"] == b for r in rows if r["copy"] == kind) for b in tn}
                     for a in tn}
        correct = sum(confusion[a][a] for a in tn)
        correct_h = sum(confusion[a][b] for a in tn for b in same[a])
        summary[kind] = {"median_db": float(np.median(d)), "max_db": float(d.max()), "min_db": float(d.min()),
                         "min_margin_db": float(m.min()), "min_margin_harpsichord_db": float(mh.min()),
                         "own_nearest": correct, "own_harpsichord_nearest": correct_h, "of": len(d),
                         "confusion": confusion}
        conf = "  ".join(f"{a}->" + ",".join(str(confusion[a][b]) for b in tn) for a in tn)
        print(f"    {kind:<22} {np.median(d):6.2f} {d.max():6.2f} {m.min():+7.2f} {mh.min():+7.2f}  "
              f"{correct:>3}/{len(d)} {correct_h:>3}/{len(d)}   {conf}")
    if args.json:
        report = {"clips": names, "seconds": args.seconds, "sample_rate_hz": sr, "band_db": args.band_db, "timbres": tn,
                  "harpsichords": groups, "matrix_median_db": matrix, "matrix_lowest_db": lowest, "copies": summary,
                  "waveform_correlation": {f"{a}/{b}": v for (a, b), v in corr.items()}, "level_dbfs": level,
                  "rows": rows}
        text = json_text(report, indent=1) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            write_text_atomic(args.json, text)


if __name__ == "__main__":
    main()
