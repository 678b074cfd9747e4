"""scripts/heldout_bits.py (several models on the same fixed held-out crops), scripts/sound_ceiling.py (what an
output format allows the sound measures) and scripts/register_bits.py (what the notes are worth), bad input too."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import torch

from wavegen.config import load_config
from wavegen.nn import checkpoint
from wavegen.nn.model import WaveNet

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "configs" / "tiny.toml"


def script(name: str = "heldout_bits"):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_at(path: Path, seed: int, *overrides: str) -> Path:
    cfg = load_config(TINY, list(overrides))
    torch.manual_seed(seed)
    model = WaveNet(cfg.model, 800)
    meta = {"sample_rate_hz": 16_000, "tick_ms": 50.0, "samples_per_tick": 800, "step": 0, "styles": []}
    return checkpoint.save(path, weights=model.state_dict(), config=cfg, meta=meta)


def rows(capsys, *argv: str) -> tuple[int, list[dict], str]:
    code = script().main(list(argv))
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.startswith("{")], err


def test_every_model_is_measured_on_the_same_crops(capsys, tmp_path, tiny_dataset):
    a, b = model_at(tmp_path / "a", 0), model_at(tmp_path / "b", 1)
    code, got, _ = rows(capsys, "--data", str(tiny_dataset), "--checkpoint", str(a), "--checkpoint", str(b),
                        "--checkpoint", str(a), "--crops", "2", "--split", "train", "--json")
    assert code == 0
    assert [r["model"] for r in got] == [str(a), str(b), str(a)]
    first, other, again = got
    # the same weights twice: the same crops, so the same bits to the last digit
    assert first["valid_bits"] == again["valid_bits"] and first["gap_bits"] == again["gap_bits"]
    assert first["valid_bits"] != other["valid_bits"]
    for r in got:
        # an untrained network predicts about uniformly over 256 classes: near 8 bits per sample
        assert 6.0 < r["valid_bits"] < 10.0, r
        assert math.isclose(r["gap_bits"], r["shuffled_bits"] - r["valid_bits"], abs_tol=1e-9)


def test_a_corpus_the_data_lacks_is_a_one_line_error(capsys, tmp_path, tiny_dataset):
    a = model_at(tmp_path / "a", 0)
    code, got, err = rows(capsys, "--data", str(tiny_dataset), "--checkpoint", str(a), "--corpus", "nosuch",
                          "--split", "train")
    assert code == 2 and not got
    assert err.startswith("heldout_bits: ") and len(err.strip().splitlines()) == 1 and "nosuch" in err


def test_a_missing_checkpoint_is_a_one_line_error(capsys, tmp_path, tiny_dataset):
    code, _, err = rows(capsys, "--data", str(tiny_dataset), "--checkpoint", str(tmp_path / "none"))
    assert code == 2 and err.startswith("heldout_bits: ") and len(err.strip().splitlines()) == 1


def test_sound_ceiling_the_stored_audio_scores_zero_and_finer_mu_law_less(capsys, tiny_dataset):
    module = script("sound_ceiling")
    code = module.main(["--data", str(tiny_dataset), "--corpus", "all", "--pieces", "1", "--seconds", "2",
                        "--sketches", "none", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    floor = {d["format"]: d["overall"]["noise_floor_db"] for d in lines}
    assert floor["16-bit PCM (the dataset's)"] == 0.0
    # quantization noise between the partials: coarser steps, a higher floor
    assert floor["mu-law 256 (every model so far)"] > floor["mu-law 1024"] > 0.0
    code = module.main(["--data", str(tiny_dataset), "--corpus", "nosuch", "--sketches", "none"])
    assert code == 2 and capsys.readouterr().err.startswith("sound_ceiling: ")


def test_register_bits_the_notes_are_worth_nothing_to_a_model_that_does_not_hear_them(capsys, tmp_path):
    module = script("register_bits")
    sketch = tmp_path / "s.txt"
    sketch.write_text("{tick_ms=50}\n" + "HLO " * 6 + "    " * 2 + "\n")
    deaf = model_at(tmp_path / "deaf", 0, "model.local_conditioning=false")
    hearing = model_at(tmp_path / "hearing", 0)
    code = module.main(["--checkpoint", str(deaf), "--checkpoint", str(hearing), "--sketch", str(sketch), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    got = {r["model"]: r for r in (json.loads(x) for x in out.splitlines() if x.startswith("{"))}
    assert got[str(deaf)]["notes_worth"] == 0.0  # the same audio, the same predictions, notes or none
    assert abs(got[str(hearing)]["notes_worth"]) > 1e-4  # a conditioned network's predictions move with them
    assert 0 < got[str(hearing)]["seconds_sounding"] < 1.5
    code = module.main(["--checkpoint", str(hearing), "--sketch", str(tmp_path / "none.txt")])
    assert code == 2 and capsys.readouterr().err.startswith("register_bits: ")
