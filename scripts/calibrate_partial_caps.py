"""The whistle limit's table: how loud each harpsichord plays each partial of each key (synth/denoise.py).

    .venv/bin/python scripts/calibrate_partial_caps.py            # writes wavegen/synth/partial_caps.npz

For every named timbre installed (notes/render.py TIMBRES) and every key, the key rendered alone (a short
and a long note), its short-time spectrum taken as the denoiser takes it, and in every frame past the
attack (and within LOUDEST_DB of the note's loudest: in the release's last whisper the ratio means
nothing) the power near each partial over the power near the key's first LIMIT_LOW_PARTIALS partials
(`denoise.relative_partials`); the table holds the most of it over those frames. A take's partial above
that (plus LIMIT_MARGIN_DB) is louder than the SoundFont ever plays it: a whistle. Prints, per timbre, a
few keys' limits in dB for the partials from 2 kHz up.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NOTE_SECONDS = (0.3, 1.5)
SAMPLE_RATE_HZ = 16_000
LOUDEST_DB = 40.0  # frames whose first partials lie this far under the note's loudest are left out


def table(soundfont: Path, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    import librosa

    from wavegen.data.conditioning import KEY_HZ
    from wavegen.notes.render import render_notes
    from wavegen.notes.text import Note
    from wavegen.synth import denoise as D

    n_fft = int(D.N_FFT_S * sample_rate_hz)
    out = np.zeros((88, int(sample_rate_hz / 2 // KEY_HZ[0]) + 1))
    for key in range(88):
        for seconds in NOTE_SECONDS:
            notes = [Note(21 + key, 0.0, seconds)]
            audio = render_notes(notes, sample_rate_hz=sample_rate_hz, soundfont=soundfont).audio
            power = np.abs(librosa.stft(np.asarray(audio, dtype=np.float64), n_fft=n_fft, hop_length=n_fft // 4,
                                        window="hann", center=True)).T ** 2
            frames = np.arange(len(power))
            sounding, attack = D._sounding(frames, sample_rate_hz, notes)
            rows = sounding[:, key] & ~attack
            parts, numbers = D.partial_powers(power[rows], key, sample_rate_hz)
            low = parts[:, numbers < D.LIMIT_LOW_PARTIALS].sum(axis=1)
            heard = low >= low.max() * 10 ** (-LOUDEST_DB / 10)  # not the release's last whisper
            rel, _ = D.relative_partials(power[rows][heard], key, sample_rate_hz)
            out[key, numbers] = np.maximum(out[key, numbers], rel.max(axis=0))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "wavegen" / "synth" / "partial_caps.npz"))
    args = ap.parse_args(argv)

    from wavegen.data.conditioning import KEY_HZ
    from wavegen.notes.plot import pitch_name
    from wavegen.notes.render import TIMBRES, split_bank

    tables = {}
    for name, where in TIMBRES.items():
        if not split_bank(where())[0].is_file():
            print(f"{name}: {where()} not installed; skipped", file=sys.stderr)
            continue
        print(f"{name}: rendering 88 keys x {len(NOTE_SECONDS)} notes", file=sys.stderr)
        tables[name] = table(where())
        for key in (0, 27, 42, 60, 75):
            first = int(np.ceil(2000 / KEY_HZ[key]))
            levels = 10 * np.log10(np.maximum(tables[name][key, first - 1 : first + 7], 1e-30))
            print(f"  {pitch_name(21 + key)}: partials {first}.. from 2 kHz: "
                  + " ".join(f"{v:+.1f}" for v in levels) + " dB")
    if not tables:
        print("no timbre installed: nothing to calibrate", file=sys.stderr)
        return 2
    tmp = Path(args.out).with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **{name: t.astype(np.float32) for name, t in tables.items()})
    tmp.replace(args.out)
    print(f"wrote {args.out}: {', '.join(tables)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
