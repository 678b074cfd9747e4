#!/usr/bin/env bash
# Install wavegen on a fresh machine: the FluidSynth library, the FluidR3 and MuseScore General MIDI SoundFonts
# (Debian/Ubuntu packages), then a virtual environment in .venv with wavegen and its test tools.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
ldconfig -p 2>/dev/null | grep -q 'libfluidsynth\.so' || need_apt+=(libfluidsynth3)
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || need_apt+=(fluid-soundfont-gm)
# a second harpsichord (timbre "musescore"; the third, timgm6mb, comes inside pretty_midi)
[ -f /usr/share/sounds/sf3/MuseScore_General.sf3 ] || need_apt+=(musescore-general-soundfont)
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)  # the fast generation kernel (else numba)
if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: installing ${need_apt[*]} with apt-get"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install the FluidSynth library yourself (macOS: brew install fluid-synth;" \
         "conda: conda install -c conda-forge fluidsynth); wavegen falls back to pretty_midi's SoundFont" >&2
  fi
fi

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: wavegen needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch 2.11 (pinned in pyproject.toml); pip may pick the CUDA build (~3 GB)
.venv/bin/python -m pip install -q -e ".[test,eval]"
# basic-pitch, the second transcriber of `wavegen evaluate`: its ONNX model ships in the wheel; its own
# dependencies pin TensorFlow (no wheel for Python >= 3.11), so it goes in without them (the [eval] extra
# above installs what it needs: onnxruntime, resampy, scikit-learn; librosa, mir_eval, pretty_midi are ours)
.venv/bin/python -m pip install -q --no-deps "basic-pitch==0.4.*"
echo "setup: done; run .venv/bin/wavegen --help"
