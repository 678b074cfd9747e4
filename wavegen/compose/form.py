"""Large-scale form for a composer: a section per new letter of a form such as ABACABA, repeated verbatim
where the letter recurs, each new section ending where it can on a major or minor triad (a cadence).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from wavegen.errors import WavegenError
from wavegen.notes import text as T

if TYPE_CHECKING:
    from wavegen.compose.lstm import LSTMComposer
    from wavegen.compose.markov import MarkovComposer

MAJOR, MINOR = frozenset({0, 4, 7}), frozenset({0, 3, 7})


def is_triad(tick: str) -> bool:
    """The tick's pitch classes are exactly a major or minor triad (doublings allowed)."""
    pcs = {(ord(c) - T.CHAR_OFFSET) % 12 for c in tick}
    if len(pcs) != 3:
        return False
    return any(frozenset((p - r) % 12 for p in pcs) in (MAJOR, MINOR) for r in pcs)


def parse_form(form: str) -> str:
    if not form or not form.isalpha() or not form.isascii():
        raise WavegenError(f"--form {form!r}: use letters only, e.g. ABACABA")
    return form.upper()


def style_kwargs(model: MarkovComposer | LSTMComposer, style: str | None,
                 blend: tuple[str, float] | None) -> dict:
    """What `model.sample` takes of a style and a blend: the LSTM both, when given; the Markov chain neither."""
    if model.kind != "lstm":
        return {}
    return {**({"style": style} if style else {}), **({"blend": blend} if blend else {})}


def compose_form(model: MarkovComposer | LSTMComposer, form: str, n_ticks: int, *, temperature: float = 1.0,
                 rng: np.random.Generator | None = None, prime: Sequence[str] = (),
                 cadence_tries: int = 20, style: str | None = None,
                 blend: tuple[str, float] | None = None) -> tuple[list[str], list[tuple[str, int, int]]]:
    """One section per new letter, repeated verbatim where the letter recurs. Each new section ends,
    where the model allows, on a tick whose notes form a major or minor triad (its last ticks are
    sampled again up to `cadence_tries` times); the LSTM writes in `style` (and `blend`, see
    LSTMComposer.sample). Returns the ticks and
    (letter, start, end) sections."""
    rng = rng or np.random.default_rng(0)
    kw = style_kwargs(model, style, blend)
    form = parse_form(form)
    length = max(4, n_ticks // len(form))
    tail = min(8, length // 2)
    sections: dict[str, list[str]] = {}
    out, spans = list(prime), []
    for letter in form:
        if letter not in sections:
            body = model.sample(length - tail, temperature=temperature, rng=rng, prime=out, **kw)
            best = None
            for _ in range(cadence_tries):
                end = model.sample(tail, temperature=temperature, rng=rng, prime=out + body, **kw)
                sounding = [t for t in end if t]
                if best is None:
                    best = end
                if sounding and is_triad(sounding[-1]):
                    best = end
                    break
            sections[letter] = body + best
        start = len(out)
        out.extend(sections[letter])
        spans.append((letter, start - len(prime), len(out) - len(prime)))
    return out[len(prime) :], spans
