"""Config: defaults in dataclasses, TOML and --set only override, mistakes are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from wavegen.config import Config, load_config
from wavegen.errors import WavegenError

CONFIGS = Path(__file__).parent.parent / "configs"


def test_defaults_file_and_overrides(tmp_path):
    assert load_config() == Config()
    f = tmp_path / "c.toml"
    f.write_text('[model]\ncycles = 3\n[train]\nlr = 1\nmixed_precision = "bf16"\n')
    cfg = load_config(f, ["model.cycles=4", "train.mixed_precision=no", 'data.valid_split="test"'])
    assert cfg.model.cycles == 4 and cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.train.mixed_precision == "no" and cfg.data.valid_split == "test"


@pytest.mark.parametrize("text, override, words", [
    ("[model]\ncycle = 3\n", [], "unknown key 'cycle'"),
    ("[modle]\n", [], "unknown key 'modle'"),
    ("[model]\ncycles = 'three'\n", [], "expected int"),
    ("[model]\ncycles = true\n", [], "expected int"),
    ("[model]\noutput = 'wav'\n", [], "choose one of mulaw, mol"),
    ("[train]\nsteps = 0\n", [], "train.steps must be positive"),
    ("", ["train.stepz=3"], "unknown key 'stepz'"),
    ("", ["train.steps"], "expected section.key=value"),
    ("", ["train.steps=1.5"], "expected int"),
    ("[model\n", [], "not valid TOML"),
])
def test_mistakes_are_errors(tmp_path, text, override, words):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(WavegenError, match=words.replace("(", r"\(")):
        load_config(f, override)


@pytest.mark.parametrize("name", ["tiny", "cpu", "gpu", "cluster"])
def test_shipped_configs_load_and_state_their_receptive_field(name):
    path = CONFIGS / f"{name}.toml"
    cfg = load_config(path)
    rf = cfg.model.receptive_field()
    assert f"Receptive field: {rf} samples" in path.read_text()


def test_cpu_config_is_the_reference_network():
    m = load_config(CONFIGS / "cpu.toml").model
    assert (m.cycles, m.layers_per_cycle, m.kernel_size, m.residual_channels, m.gate_channels,
            m.skip_channels, m.n_classes, m.output) == (2, 10, 2, 64, 64, 128, 256, "mulaw")
    assert m.local_conditioning
