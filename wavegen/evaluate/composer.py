"""`wavegen evaluate-composer`: does a composer write music like the music it learned, without copying it?

Held-out bits per tick and per character, and, for generated sketches next to as many real held-out
pieces of the same length, the musical statistics (compose/stats.py) and the copy check against the
training split (compose/copycheck.py); `report_markdown` is the table of both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from wavegen.compose.copycheck import CopyIndex
from wavegen.compose.markov import MarkovComposer, ticks_of
from wavegen.compose.stats import musical_stats
from wavegen.data.dataset import Dataset
from wavegen.errors import WavegenError

if TYPE_CHECKING:
    from wavegen.compose.lstm import LSTMComposer


def evaluate_composer(model: MarkovComposer | LSTMComposer, ds: Dataset, *, split: str = "test", samples: int = 5,
                      seconds: float = 20.0, temperature: float = 1.0, seed: int = 0) -> dict:
    """Held-out bits per tick and per character, and, for `samples` generated sketches next to as many real
    held-out pieces of the same length: musical statistics and the copy check against the training set.
    `model` is a MarkovComposer or an LSTMComposer; `ds` a dataset (its untransposed pieces are used)."""
    def originals(part: str) -> list[list[str]]:
        return [ticks_of(ds.text(it)) for it in ds.items(part) if it.transpose == 0]

    train, held = originals("train"), originals(split)
    if not held:
        raise WavegenError(f"{ds.root}: no pieces in the {split!r} split")
    index = CopyIndex(train)
    n = int(round(seconds * 1000 / model.tick_ms))
    rng = np.random.default_rng(seed)
    generated = [model.sample(n, temperature=temperature, rng=rng) for _ in range(samples)]
    real = [h[:n] for h in held[:samples]]

    def summary(seqs: list[list[str]]) -> dict[str, float]:
        stats = [musical_stats(s) for s in seqs]
        out = {k: float(np.mean([st[k] for st in stats])) for k in stats[0]}
        out["longest_copy_ticks"] = float(np.mean([index.longest_copy(s) for s in seqs]))
        out["share_16grams_in_training"] = float(np.mean([index.share_found(s, 16) for s in seqs]))
        return out

    bits_tick = model.bits_per_tick(held)
    chars = sum(len(t) + 1 for h in held for t in h)  # each tick's keys and its space
    ticks = sum(len(h) for h in held)
    return {"kind": model.kind, "order": model.order, "split": split, "samples": samples, "real_pieces": len(real),
            "heldout_bits_per_tick": bits_tick, "heldout_bits_per_char": bits_tick * ticks / chars,
            "ticks_per_sample": n, "generated": summary(generated), "real_heldout": summary(real)}


def report_markdown(report: dict) -> str:
    rows = ["| measure | generated | real held-out |", "|---|---|---|"]
    for k in report["generated"]:
        rows.append(f"| {k} | {report['generated'][k]:.3f} | {report['real_heldout'][k]:.3f} |")
    what = f"order-{report['order']} Markov" if report["kind"] == "markov" else "character LSTM"
    n = report["ticks_per_sample"]
    return (f"# Composer evaluation: {report.get('model', '')} ({what})\n\n"
            f"Held-out {report['heldout_bits_per_tick']:.3f} bits per tick, {report['heldout_bits_per_char']:.3f} "
            f"bits per character. {report['samples']} samples of {n} ticks against {report['real_pieces']} real "
            f"held-out pieces (first {n} ticks), copies checked in any transposition.\n\n" + "\n".join(rows) + "\n")


@dataclass
class ComposerReport:
    report: dict  # what `evaluate_composer` measured, and the model's name
    markdown: str  # `report_markdown`

    def summary(self) -> str:
        """What `wavegen evaluate-composer` prints: the Markdown report."""
        return self.markdown


def evaluate_composer_to(output: str | None, *, model: str | None = None, data: str, split: str = "test",
                         samples: int = 5, seconds: float = 20.0, temperature: float = 1.0,
                         seed: int = 0) -> ComposerReport:
    """`wavegen evaluate-composer`: evaluate `model` (default the shipped composer) on the dataset `data`;
    write REPORT.json and REPORT.md when `output` is given."""
    import json
    from pathlib import Path

    from wavegen.compose.load import DEFAULT_COMPOSER, load_composer
    from wavegen.data import dataset
    from wavegen.files import check_output, write_text_atomic
    from wavegen.notes.limits import check_duration

    check_duration(seconds, "--seconds")
    for path in [Path(output), Path(output).with_suffix(".md")] if output else []:
        check_output(path)
    composer = load_composer(model)
    report = evaluate_composer(composer, dataset.load(data), split=split, samples=samples, seconds=seconds,
                               temperature=temperature, seed=seed)
    report["model"] = model or DEFAULT_COMPOSER
    md = report_markdown(report)
    if output:
        write_text_atomic(output, json.dumps(report, indent=1) + "\n")
        write_text_atomic(Path(output).with_suffix(".md"), md)
    return ComposerReport(report, md)
