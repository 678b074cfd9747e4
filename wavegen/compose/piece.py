"""Composing a new sketch: its length, the prime it continues, its form, the sampling, and its header.

`compose` is `wavegen compose` without the command line: it continues the prime's ticks with new ones
from any composer (MarkovComposer or LSTMComposer), in one stretch or section by section after a form
(compose/form.py), and returns the whole as a KeyText whose header names its style (and form). The
helpers check the parts the command takes from the user; `compose` checks the style and form itself.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from wavegen.compose.form import compose_form, parse_form, style_kwargs
from wavegen.compose.markov import MarkovComposer, keytext_of, ticks_of
from wavegen.errors import WavegenError
from wavegen.notes import limits
from wavegen.notes import text as T

if TYPE_CHECKING:
    from wavegen.compose.lstm import LSTMComposer

DEFAULT_SECONDS = 20.0
UNNAMED_STYLE = "composed"  # the header's style when the composer learned none


@dataclass(frozen=True)
class Composed:
    keytext: T.KeyText  # the prime's ticks, then the new ones
    sections: list[tuple[str, int, int]]  # with a form: (letter, start, end) in ticks after the prime; else []


def length_in_ticks(tick_ms: float, *, ticks: int | None = None, seconds: float | None = None) -> int:
    """The new sketch's length: `ticks`, or `seconds` of `tick_ms` ticks (default DEFAULT_SECONDS); at
    most the 2 h of a text (notes/limits.py)."""
    if ticks is not None:
        return limits.check_ticks(ticks, tick_ms, "--ticks")
    seconds = DEFAULT_SECONDS if seconds is None else limits.check_duration(seconds, "--seconds")
    return max(1, int(round(seconds * 1000 / tick_ms)))


def check_style(model: MarkovComposer | LSTMComposer, style: str | None,
                blend: tuple[str, float] | None = None) -> None:
    """`style` and the style of `blend` (other, weight 0..1) are styles the composer learned."""
    for name, option in ((style, "--style"), (blend[0] if blend else None, "the blend's style")):
        if name and name not in model.styles:
            raise WavegenError(f"{option} {name}: the composer learned only: {', '.join(model.styles) or 'none'}")
    if blend and (model.kind != "lstm" or not 0 <= blend[1] <= 1):
        raise WavegenError("a blend of styles needs the LSTM composer and a weight from 0 to 1")


def read_prime(path: str | os.PathLike, tick_ms: float) -> list[str]:
    """The ticks of an 88-key text file to continue, which must have the composer's tick length."""
    pk = T.read_file(path)
    if pk.tick_ms != tick_ms:
        raise WavegenError(f"{path}: ticks of {pk.tick_ms:g} ms; the composer writes {tick_ms:g} ms")
    return ticks_of(pk)


def compose(model: MarkovComposer | LSTMComposer, n_ticks: int, *, temperature: float = 1.0,
            rng: np.random.Generator | None = None, prime: Sequence[str] = (), form: str | None = None,
            style: str | None = None, blend: tuple[str, float] | None = None) -> Composed:
    """n_ticks new ticks after `prime` (with a form: rounded down to equal sections, see compose_form).
    The LSTM writes in `style`, moved toward another by blend=(other, weight); the header's style is
    `style` (or the blend's when it weighs more), else the first the composer learned."""
    check_style(model, style, blend)
    form = parse_form(form) if form else None
    rng = rng or np.random.default_rng(0)
    if form:
        new, sections = compose_form(model, form, n_ticks, temperature=temperature, rng=rng, prime=prime, style=style,
                                     blend=blend)
    else:
        new, sections = model.sample(n_ticks, temperature=temperature, rng=rng, prime=prime,
                                     **style_kwargs(model, style, blend)), []
    meta = {"style": style or (model.styles[0] if model.styles else UNNAMED_STYLE)}
    if blend and blend[1] > 0.5:
        meta["style"] = blend[0]
    if form:
        meta["form"] = form
    return Composed(keytext_of(list(prime) + new, model.tick_ms, meta), sections)
