"""Progress shown on standard error: a bar that the caller of a long job drives through the job's
on_start(total, rate) and progress(done) callbacks. Any layer may use it; it imports nothing of wavegen."""

from __future__ import annotations

import time


class Bar:
    """A progress bar on standard error (off when it is not a terminal), started when the total is known
    and closed when it is reached (what is said after it starts on a line of its own); with a sample rate
    it shows the real-time factor. `per_step`: units per step reported (takes played at once)."""

    def __init__(self, desc: str, unit: str, per_step: int = 1):
        self.desc, self.unit, self.per_step, self.bar, self.rate_hz = desc, unit, per_step, None, 0

    def start(self, total: int, rate_hz: int = 0) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total * self.per_step, unit=self.unit, unit_scale=True, disable=None, desc=self.desc)
        self.rate_hz, self.t0 = rate_hz, time.perf_counter()

    def to(self, done: int, total: int | None = None) -> None:
        self.bar.update(done * self.per_step - self.bar.n)
        if self.rate_hz:
            speed = self.bar.n / max(time.perf_counter() - self.t0, 1e-9)
            self.bar.set_postfix(realtime=f"{speed / self.rate_hz:.3f}x")
        if self.bar.n >= self.bar.total:
            self.bar.close()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
