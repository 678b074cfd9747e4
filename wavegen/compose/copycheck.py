"""Does a composer compose or copy? The n-grams of the training corpus, searched for a sketch's runs of
ticks in every transposition of up to an octave either way (a chorale moved by a tone is still a copy).
"""

from __future__ import annotations

from collections.abc import Sequence

from wavegen.compose.markov import transpose_tick


def _ngrams(seq: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)}


class CopyIndex:
    """The n-grams of a training corpus, for transposition-invariant copy checks."""

    def __init__(self, corpus: Sequence[Sequence[str]]):
        self.corpus = [list(s) for s in corpus]
        self._sets: dict[int, set[tuple[str, ...]]] = {}

    def grams(self, n: int) -> set[tuple[str, ...]]:
        if n not in self._sets:
            found: set[tuple[str, ...]] = set()
            for s in self.corpus:
                found |= _ngrams(s, n)
            self._sets[n] = found
        return self._sets[n]

    def _shifts(self, seq: Sequence[str]) -> list[list[str]]:
        out = []
        for s in range(-12, 13):
            moved = [transpose_tick(t, s) for t in seq]
            if all(m is not None for m in moved):
                out.append(moved)
        return out

    def contains(self, seq: Sequence[str], n: int) -> bool:
        grams = self.grams(n)
        return any(not _ngrams(m, n).isdisjoint(grams) for m in self._shifts(seq))

    def longest_copy(self, seq: Sequence[str]) -> int:
        """The longest run of ticks of seq found verbatim in the corpus, in any transposition."""
        lo, hi = 0, len(seq)
        while lo < hi:  # the property "some n-gram is found" is monotone in n
            mid = (lo + hi + 1) // 2
            if self.contains(seq, mid):
                lo = mid
            else:
                hi = mid - 1
        return lo

    def share_found(self, seq: Sequence[str], n: int = 16) -> float:
        """Share of seq's n-grams found in the corpus (each in any transposition)."""
        grams = self.grams(n)
        own = [tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)]
        if not own:
            return 0.0
        found = 0
        for g in own:
            for s in range(-12, 13):
                moved = tuple(transpose_tick(t, s) for t in g)
                if None not in moved and moved in grams:
                    found += 1
                    break
        return found / len(own)
