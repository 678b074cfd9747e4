"""scripts/gpu_check.py on a CPU: every path of the GPU check but the CUDA-only calls (the graph's capture,
CUDA's memory statistics), so that on a GPU only those can fail; and the step class of CUDA-graph
generation, uncaptured, against the plain step. The GPU's own check is marked `gpu`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from wavegen.config import ModelConfig, load_config
from wavegen.nn.model import WaveNet
from wavegen.synth.generate import CudaGraphStep

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import gpu_check  # noqa: E402


def _report(capsys, *args: str) -> tuple[int, dict]:
    code = gpu_check.main(["--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_the_quick_check_runs_on_a_cpu(capsys):
    code, report = _report(capsys, "--device", "cpu", "--quick", "--variants", "bf16,fp16")
    assert code == 0 and report["ok"]
    ref, bf16, fp16 = report["training"]["rows"]
    assert ref["device"] == "cpu" and ref["precision"] == "no" and len(ref["losses"]) == 2
    assert (bf16["precision"], fp16["precision"]) == ("bf16", "fp16")
    assert fp16["loss_scale"] is not None and bf16["loss_scale"] is None  # fp16 went through the loss scaler
    for row in (bf16, fp16):
        assert row["agrees"] and 0 < row["max_rel_diff"] <= row["tolerance"]  # low precision, yet close
        assert len(row["losses"]) == 4 and row["samples_per_s"] > 0  # 1 warm-up + 3 timed steps
    gen = report["generation"]
    assert gen["equal"] and [r["batch"] for r in gen["rows"]] == [1, 16, 64]
    assert all(r["finite"] and r["samples_per_s"] > 0 for r in gen["rows"])


def test_a_loss_that_disagrees_fails_the_check(capsys, monkeypatch):
    monkeypatch.setattr(gpu_check, "TOLERANCE", {"bf16": 1e-12, "fp16": 1e-12, "no": 1e-12})
    code, report = _report(capsys, "--device", "cpu", "--quick", "--variants", "bf16", "--gen-batches", "")
    assert code == 1 and not report["ok"] and not report["training"]["rows"][1]["agrees"]
    assert "generation" not in report


@pytest.mark.slow
def test_the_quick_check_compiles(capsys):
    code, report = _report(capsys, "--device", "cpu", "--quick", "--variants", "fp16:compile", "--gen-batches", "")
    row = report["training"]["rows"][1]
    assert code == 0 and row["compile"] and row["agrees"] and row["variant"] == "fp16 compiled"


def test_the_graph_step_uncaptured_equals_the_plain_step():
    torch.manual_seed(0)
    cfg = ModelConfig(residual_channels=8, gate_channels=8, skip_channels=16, head_channels=16, layers_per_cycle=3,
                      cycles=2, cond_channels=8, kernel_size=3, n_styles=2)
    model = WaveNet(cfg, 20).eval()
    B, T = 3, 50
    inputs = torch.randint(0, 256, (B, T))
    cond, exc = torch.randn(B, 8, T), torch.randn(B, 176, T)
    style = torch.tensor([0, 1, 1])
    graphed = CudaGraphStep(model, B, torch.device("cpu"), inputs[:, 0], 8, 176, style)
    assert graphed.graph is None
    plain = model.init_state(B)
    for t in range(T):
        want = model.step(inputs[:, t], plain, cond[:, :, t], exc[:, :, t], style)
        got = graphed(inputs[:, t], None, cond[:, :, t], exc[:, :, t])
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert int(graphed.state.t) == T


def test_the_estimate_is_what_the_maestro_config_says(capsys):
    path = ROOT / "configs" / "maestro-gpu.toml"
    code, report = _report(capsys, "--estimate", str(path))
    e, text = report["estimate"], path.read_text()
    cfg = load_config(path)
    assert code == 0 and e["receptive_field_samples"] == cfg.model.receptive_field()
    assert e["samples_per_step"] == cfg.data.batch_size * cfg.data.crop_samples * cfg.train.grad_accum
    # the numbers the config's comment gives are the estimate's
    assert f"{e['parameters']:,} parameters" in text
    assert f"{e['train_mflops_per_sample']:.1f} MFLOP per training sample" in text
    assert f"{e['memory_gib']:.1f} GiB per GPU" in text
    assert f"{e['samples_per_s'] / 1e6:.2f} M samples/s" in text


@pytest.mark.gpu
def test_the_gpu_check_passes_on_this_gpu(capsys):
    code, report = _report(capsys, "--quick", "--variants", "bf16,fp16,bf16:compile", "--gen-batches", "1,16")
    assert code == 0 and report["ok"] and report["generation"]["graph"]
