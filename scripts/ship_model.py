"""Ship a trained checkpoint inside the package, with a model card made from its run's records.

    .venv/bin/python scripts/ship_model.py --checkpoint runs/harpsichord-cpu/best \\
        --report evaluation/report.json --curve evaluation/curve.json --name harpsichord-cpu

Copies model.safetensors and config.json to wavegen/models/NAME/ (loaded by `--checkpoint NAME`, and
by default when NAME is harpsichord-cpu) and writes MODEL_CARD.md there: the network, the data and its
licence, the training (steps, wall time, schedule), the learning curve from the run's log.jsonl (and
note F1 at the steps in --curve), and the evaluation report.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wavegen.config import load_config  # noqa: E402
from wavegen.data.conditioning import DEFAULT_VELOCITY  # noqa: E402
from wavegen.evaluate.report import markdown  # noqa: E402
from wavegen.nn import checkpoint  # noqa: E402
from wavegen.train.loop import differences  # noqa: E402

BACH_DATA = (
    "The Bach chorales in music21's corpus (410 scores), each rendered from its own 88-key text by FluidSynth "
    "with the FluidR3_GM harpsichord (General MIDI program 6), transposed -3..+3 semitones (2,870 renderings, "
    "27.7 h). Split by piece: 370 training, 22 validation, 18 test chorales; the model never saw the validation "
    "or test chorales in any transposition. Licence of the data: the compositions are in the public domain; the "
    "encodings come from the music21 corpus, licensed for use by their encoders (some not for commercial use; "
    "see music21/corpus/license.txt). FluidR3_GM is MIT-licensed."
)


def data_section(meta: dict, data_dir: str | None) -> list[str]:
    """The card's data: the dataset's record, and with --data its corpora (pieces, hours, licences)."""
    ds_meta = meta.get("dataset") or {}
    if ds_meta.get("styles") == ["bach"] and ds_meta.get("items") == 2870:
        return [BACH_DATA]
    from wavegen.data import dataset
    from wavegen.data.corpora import CORPORA

    lines = [f"The dataset `{ds_meta.get('name')}` (`wavegen data build --corpus {ds_meta.get('name')}`): "
             f"{ds_meta.get('pieces'):,} pieces, {ds_meta.get('items'):,} renderings, {ds_meta.get('hours')} h, "
             f"transpositions {ds_meta.get('transpositions')}; each piece rendered from its own 88-key text by "
             f"FluidSynth with the {ds_meta.get('soundfont')} harpsichord (General MIDI program 6). Split by piece: "
             "the model never saw a validation or test piece.", ""]
    if len(ds_meta.get("timbres") or {}) > 1:  # a dataset of one harpsichord records it too: its SoundFont said it
        from wavegen.notes.render import TIMBRE_LICENCES

        names = list(ds_meta["timbres"])
        lines[0] = lines[0].replace(f"with the {ds_meta.get('soundfont')} harpsichord",
                                    f"with each of {len(names)} harpsichords")
        lines += [f"**Timbres** (`wavegen generate --timbre NAME`; default `{names[0]}`): every piece was rendered "
                  "with each, and the model plays the one it is asked for (global conditioning, like a speaker id):", ""]
        lines += [f"- `{name}`: {TIMBRE_LICENCES.get(name, t['soundfont'])}" for name, t in ds_meta["timbres"].items()]
        lines.append("")
    if data_dir:
        ds = dataset.load(data_dir)
        per = dataset.style_summary(ds.items())
        tests = dataset.style_summary(ds.items("test"))
        lines += ["| corpus | what | pieces | hours | test pieces | licence |", "|---|---|---|---|---|---|"]
        for style, v in per.items():
            c = CORPORA.get(style)
            lines.append(f"| `{style}` | {c.holds if c else ''} | {v['pieces']} | {v['hours']:.2f} | "
                         f"{tests.get(style, {}).get('pieces', 0)} | {'; '.join(v['licences'])} |")
        lines.append("")
    lines.append("FluidR3_GM is MIT-licensed.")
    return lines


def velocity_line(uses_velocity: bool, meta: dict) -> str:
    """The card's line on velocities: whether the model reads them, and what a note without one gets."""
    if not uses_velocity:
        return ("- Velocities: none (`model.velocity` off); every note plays alike, whatever "
                "its MIDI velocity.")
    default = meta.get("default_velocity", DEFAULT_VELOCITY)
    return (f"- Velocities: velocity/127 of every sounding key per tick, 88 tick features beside the notes' "
            f"(`model.velocity`). A MIDI sketch plays its own velocities (its notes held by the sustain pedal, as "
            f"the training data's were); a note without one, every note of an 88-key text, plays at velocity "
            f"{default}, the median of the training data's (`default_velocity` in config.json).")


def train_command(cfg, meta: dict, name: str) -> str:
    """The `wavegen train` command that made this run: configs/cpu.toml plus a --set per difference."""
    base = load_config(ROOT / "configs" / "cpu.toml")
    changed = differences(base, cfg, ("data", "model", "train"))
    sets = " ".join(f"--set {k}={v}" for k, (_, v) in changed.items())
    data = (meta.get("dataset") or {}).get("name", "DATA")
    return f"wavegen train --config configs/cpu.toml --data data/build/{data} --out runs/{name} {sets}".strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="the checkpoint folder to ship")
    ap.add_argument("--report", required=True, help="`wavegen evaluate` report of that checkpoint (JSON)")
    ap.add_argument("--curve", help="JSON list of {step, wall_s, onset_f1_of_ceiling, frame_f1_of_ceiling} (optional)")
    ap.add_argument("--name", default=checkpoint.DEFAULT_MODEL)
    ap.add_argument("--temperature", type=float, default=1.0, help="the sampling temperature to ship with")
    ap.add_argument("--min-p", type=float, default=0.0, help="the min-p cut to ship with (0 = none)")
    ap.add_argument("--data", help="the dataset folder it trained on: its corpora, hours and licences go in the card")
    ap.add_argument("--notes", help="a Markdown file appended to the card (what the numbers cannot say: the "
                    "run's history, the targets)")
    args = ap.parse_args()

    src = checkpoint.resolve(args.checkpoint)
    loaded = checkpoint.load(src)
    meta, cfg = loaded.meta, loaded.config
    run_dir = src.parent.parent if src.parent.name == "checkpoints" else src.parent
    log = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()] if (run_dir / "log.jsonl").is_file() else []
    report = json.loads(Path(args.report).read_text())
    curve = {c["step"]: c for c in json.loads(Path(args.curve).read_text())} if args.curve else {}
    protocols = sorted({c["protocol"] for c in curve.values() if c.get("protocol")})
    notes = Path(args.notes).read_text().strip() if args.notes else ""

    dest = checkpoint.MODELS_DIR / args.name
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / checkpoint.WEIGHTS, dest / checkpoint.WEIGHTS)
    shipped_meta = json.loads((src / checkpoint.CONFIG).read_text())
    shipped_meta["sampling_temperature"] = args.temperature
    shipped_meta["sampling_min_p"] = args.min_p
    (dest / checkpoint.CONFIG).write_text(json.dumps(shipped_meta, indent=1) + "\n")

    # wall_s restarts at 0 whenever the run is resumed: sum the segments
    segments, last = [], None
    for r in log:
        if "wall_s" in r and r.get("step", 0) <= (meta.get("step") or 0):
            if last is None or r["wall_s"] < last:
                segments.append(0.0)
            segments[-1] = last = r["wall_s"]
    evals = [r for r in log if "valid_bits" in r]
    record = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else {}
    styles = (meta.get("dataset") or {}).get("styles") or ["bach"]
    trained_on = "Bach chorales" if styles == ["bach"] else f"{len(styles)} corpora ({', '.join(styles)})"
    m = cfg.model
    rf = m.receptive_field()
    n_params = sum(p.numel() for p in loaded.model.parameters())
    lines = [
        f"# Model card: {args.name}",
        "",
        f"A WaveNet that plays harpsichord from 88-key text, trained on {trained_on}; shipped with wavegen and "
        f"loaded by `--checkpoint {args.name}`" + (" (the default)." if args.name == checkpoint.DEFAULT_MODEL else "."),
        "",
        "## Network",
        "",
        f"- {m.cycles} cycles x {m.layers_per_cycle} dilated causal layers (dilations 1 ... {2 ** (m.layers_per_cycle - 1)}), "
        f"kernel {m.kernel_size}, {m.residual_channels} residual, 2 x {m.gate_channels} gate, {m.skip_channels} skip channels, "
        f"head {m.head_channels}, {m.n_classes} mu-law classes: `configs/cpu.toml`, the reference network.",
        f"- Conditioned on the 88-key text: per-tick state/onset/decay features through a conv net with "
        f"{m.cond_lookahead_ticks} ticks of lookahead, and the audio-rate sine/cosine excitation of every sounding key.",
        velocity_line(m.uses_velocity(), meta),
        *([f"- Global conditioning on the harpsichord: a timbre embedding per layer added to its gates, "
           f"{m.n_timbres} timbres ({', '.join(meta.get('timbres', []))}; `--timbre NAME`, default "
           f"`{meta.get('timbres', ['?'])[0]}`)."] if m.n_timbres else []),
        f"- {n_params:,} parameters; receptive field {rf} samples ({rf / loaded.sample_rate_hz * 1000:.0f} ms); "
        f"{loaded.sample_rate_hz} Hz, {loaded.tick_ms:g} ms ticks. Weights: the EMA (decay {cfg.train.ema_decay}). "
        f"Sampling by default: temperature {args.temperature:g}, min-p {args.min_p:g} (never a sample value less likely "
        f"than {args.min_p:g} times the most likely one; `--temperature` and `--min-p` override them).",
        "",
        "## Data",
        "",
        *data_section(meta, args.data),
        "",
        "## Training",
        "",
        (f"Started from the weights of {record['init']} (`train.init`), with a fresh optimizer and schedule. "
         if record.get("init") else "") +
        f"`{train_command(cfg, meta, args.name)}`: "
        f"batch {cfg.data.batch_size} x {cfg.data.crop_samples} samples, AdamW lr {cfg.train.lr:g} with "
        f"{cfg.train.warmup_steps} warm-up steps and cosine decay over {cfg.train.steps} steps, "
        f"mixed precision {cfg.train.mixed_precision}, on a 2-core CPU of the project's machines. This checkpoint: "
        f"step {meta.get('step')}" + (f", {sum(segments) / 3600:.2f} h of wall time"
                                      + (f" in {len(segments)} sessions (resumed from its checkpoint each time)"
                                         if len(segments) > 1 else "") if segments else "") + ".",
        "",
        "### Learning curve",
        "",
        f"Validation bits per sample and the shuffled-notes gap on {cfg.data.valid_crops} fixed crops of the "
        f"validation {'chorales' if styles == ['bach'] else 'split (every corpus)'} "
        "(from the run's log); note F1 as a fraction of the reference ceiling where it was measured "
        "(`wavegen evaluate`" + (f": {'; '.join(protocols)}" if protocols else ", test split") + ").",
        "",
        "| step | validation bits/sample | shuffled-notes gap | onset F1 / ceiling | frame F1 / ceiling |",
        "|---|---|---|---|---|",
    ]
    for r in evals:
        c = curve.get(r["step"], {})
        of = f"{c['onset_f1_of_ceiling']:.2f}" if c else ""
        ff = f"{c['frame_f1_of_ceiling']:.2f}" if c else ""
        lines.append(f"| {r['step']} | {r['valid_bits']:.3f} | {r['gap_bits']:.3f} | {of} | {ff} |")
    lines += ["", "## Evaluation", "", markdown(report).split("\n", 1)[1].strip(), "",
              "Reproduce: `wavegen evaluate --checkpoint " + args.name + f" --data {report['dataset']}"
              + (f" --corpus {report['corpus']}" if report.get("corpus") else "")
              + (f" --timbre {report['timbre']}" if report.get("timbre") else "") + f" --pieces "
              f"{len(report['pieces'])} --seconds {report['seconds_per_piece']:g}"
              + f" --denoise {report.get('denoise_db', 0.0):g}` (the model's own temperature and "
              "min-p unless given; the sketch suite in data/sketches/ too).", ""]
    if notes:
        lines += [notes, ""]
    (dest / "MODEL_CARD.md").write_text("\n".join(lines))
    print(f"shipped {src} as {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
