"""Audio files and mu-law."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from wavegen.audio import mu_law_decode, mu_law_encode, read_audio, write_audio
from wavegen.errors import WavegenError


def test_mu_law_round_trip_over_all_levels():
    codes = np.arange(256)
    assert np.array_equal(mu_law_encode(mu_law_decode(codes)), codes)
    assert mu_law_decode(np.array([0, 255])).tolist() == [-1.0, 1.0]
    x = np.linspace(-1, 1, 10_001)
    err = np.abs(mu_law_decode(mu_law_encode(x)) - x)
    assert err.max() < 0.03 and err[4900:5100].max() < 1e-3  # fine steps near silence


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_write_read_16_bit_mono_and_count_clipping(tmp_path, suffix):
    t = np.arange(1600) / 16_000
    x = (1.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    rep = write_audio(tmp_path / f"a{suffix}", x, 16_000)
    info = sf.info(tmp_path / f"a{suffix}")
    assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
    assert rep.clipped == np.count_nonzero(np.abs(x) > 32767.5 / 32767) > 0
    y, sr = read_audio(tmp_path / f"a{suffix}")
    assert sr == 16_000 and np.abs(y - np.clip(x, -1, 1)).max() < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == [f"a{suffix}"]  # no temporary files left


def test_write_refuses_nan_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        write_audio(tmp_path / "a.wav", np.array([0.0, np.nan], dtype=np.float32), 16_000)
    assert list(tmp_path.iterdir()) == []


def test_read_resamples_and_rejects_non_audio(tmp_path):
    x = np.sin(2 * np.pi * 100 * np.arange(44_100) / 44_100).astype(np.float32)
    write_audio(tmp_path / "a.wav", x, 44_100)
    y, sr = read_audio(tmp_path / "a.wav", 16_000)
    assert sr == 16_000 and abs(len(y) - 16_000) <= 1
    (tmp_path / "b.wav").write_bytes(b"not audio at all")
    with pytest.raises(WavegenError, match="b.wav: not a readable audio file"):
        read_audio(tmp_path / "b.wav")
