"""A small progress reporter for long loops (training epochs, test, dataset scripts), with no dependency.

On a terminal it redraws one line; in a log file (CI, ``nohup``) it writes a line every ``log_every`` seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """``for x in Progress(items, desc="test"): ...`` prints ``test  12/50 (24%) 3.1 it/s, ETA 00:12``."""

    def __init__(
        self,
        iterable: Iterable[T] | None = None,
        total: int | None = None,
        desc: str = "",
        disable: bool = False,
        stream: TextIO | None = None,
        log_every: float = 10.0,
    ):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.desc = desc
        self.disable = disable
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = 0.2 if self.tty else log_every
        self.count = 0
        self.start = time.perf_counter()
        self.last_draw = -float("inf")
        self.postfix = ""

    def __iter__(self) -> Iterator[T]:
        assert self.iterable is not None, "Progress(iterable=...) is needed to iterate"
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def set_postfix(self, text: str) -> None:
        self.postfix = text

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        parts = [self.desc] if self.desc else []
        if self.total:
            parts.append(f"{self.count}/{self.total} ({100 * self.count / self.total:.0f}%)")
        else:
            parts.append(str(self.count))
        parts.append(f"{rate:.2f} it/s" if rate >= 1 or rate == 0 else f"{1 / rate:.2f} s/it")
        if self.total and rate > 0:
            parts.append(f"ETA {format_seconds((self.total - self.count) / rate)}")
        parts.append(f"elapsed {format_seconds(elapsed)}")
        if self.postfix:
            parts.append(self.postfix)
        return "  ".join(parts)

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.perf_counter()
        if self.disable or now - self.last_draw < self.interval:
            return
        self.last_draw = now
        self._draw()

    def _draw(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.disable:
            return
        self._draw()
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
        self.disable = True
