"""A dependency-free progress bar on stderr, shown only to a person at a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, label: str, total: int | None = None, stream: TextIO | None = None,
                 enabled: bool | None = None):
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._last = 0.0

    def update(self, done: int, total: int | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        now = time.monotonic()
        if not self.enabled or (now - self._last < 0.1 and done != self.total):
            return
        self._last = now
        if self.total:
            width = 30
            filled = int(width * min(done, self.total) / self.total)
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total}")
        else:
            self.stream.write(f"\r{self.label} {done}")
        self.stream.flush()

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
