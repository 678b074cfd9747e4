"""Finding a composer by name: a shipped model's name (wavegen/models/NAME), a folder or a file.

A folder holding `markov.json.gz` (or that file itself) is a Markov chain; any other folder is a checkpoint
or run folder of the character LSTM. Without a name, the shipped default composer. The models' modules are
imported when one is loaded: the command line reads DEFAULT_COMPOSER for its help without loading torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from wavegen.errors import WavegenError

if TYPE_CHECKING:
    from wavegen.compose.lstm import LSTMComposer
    from wavegen.compose.markov import MarkovComposer

COMPOSER_FILE = "markov.json.gz"  # a Markov chain's file in its folder
DEFAULT_COMPOSER = "composer-lstm"  # measured better than the Markov chain (its MODEL_CARD.md)


def load_composer(name: str | None = None) -> MarkovComposer | LSTMComposer:
    """The composer `name` names (default DEFAULT_COMPOSER); a WavegenError if there is none."""
    from wavegen.compose.markov import MarkovComposer
    from wavegen.nn import checkpoint

    name = name or DEFAULT_COMPOSER
    p = Path(name)
    if not p.exists() and (checkpoint.MODELS_DIR / name).is_dir():
        p = checkpoint.MODELS_DIR / name
    if p.is_dir() and not (p / COMPOSER_FILE).is_file():
        from wavegen.compose.lstm import LSTMComposer

        return LSTMComposer.load(p)  # a checkpoint or run folder of the LSTM composer
    if p.is_dir():
        p = p / COMPOSER_FILE
    if not p.is_file():
        raise WavegenError(f"{name}: no such composer model (train one with `wavegen train-composer`)")
    return MarkovComposer.load(p)
