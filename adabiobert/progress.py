"""The progress of a long stage, told once: a bar on a terminal, a few plain lines in a log.

On a terminal a tqdm bar redraws itself in place. Written to a file or a pipe (``| tee``, a CI
log, ``ray job logs``) the same bar piles up carriage returns on one line, so there a
:class:`Progress` prints a line every ``every_s`` seconds (none for a stage shorter than that)
and one when the stage ends, each with the count, the total, the rate and the time left (ETA).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_MIN_SPAN_S = 0.5
"""A rate measured over less time than this is noise, not a rate: none is shown."""


def format_seconds(seconds: float) -> str:
    """A duration for people: ``8 s``, ``4 min 05 s``, ``1 h 02 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """Counts done out of a total, shown as a tqdm bar (terminal) or throttled lines (anything else).

    Args:
        desc: the stage's name, first on every line.
        total: how many units the stage has (None: unknown, no percentage or ETA).
        unit: the unit's name, singular (``article``, ``step``).
        enabled: False shows nothing at all.
        stream: where to write (stderr by default, as tqdm does).
        every_s: in line mode, the least time between two lines (0: a line per update).
        bar: force the bar (True) or lines (False); default: a bar when ``stream`` is a terminal.
    """

    def __init__(self, desc: str, total: int | None, unit: str, *, enabled: bool = True, stream: TextIO | None = None,
                 every_s: float = 30.0, bar: bool | None = None) -> None:
        self.desc, self._total, self.unit, self.enabled = desc, total, unit, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.every_s = every_s
        self.n = 0
        self.note = ""
        self._started = time.monotonic()
        self._first: tuple[float, int] | None = None  # (time, count) after the first update: start-up is not work
        self._printed_at = self._started  # line mode: a line every every_s (a short stage has its closing line only)
        self._bar = None
        use_bar = bar if bar is not None else _is_terminal(self.stream)
        if enabled and use_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, dynamic_ncols=True)

    @property
    def total(self) -> int | None:
        return self._total

    @total.setter
    def total(self, value: int | None) -> None:
        """Known only once the work has started (training's steps): set it then."""
        self._total = value
        if self._bar is not None and self._bar.total != value:
            self._bar.total = value
            self._bar.refresh()

    def update(self, n: int = 1, note: str | None = None) -> None:
        """``n`` more units done; ``note`` (e.g. ``loss 0.27``) replaces the previous one."""
        now = time.monotonic()
        self.n += n
        if self._first is None:
            self._first = (now, self.n)
        if note is not None:
            self.note = note
        if not self.enabled:
            return
        if self._bar is not None:
            if note is not None:
                self._bar.set_postfix_str(note, refresh=False)
            self._bar.update(n)
        elif self._due(now):
            self._print(self.line(now))
            self._printed_at = now

    def _due(self, now: float) -> bool:
        """Line mode: a line once ``every_s`` has passed since the last (or the start); never for the
        last update (``close`` says it)."""
        if self._total and self.n >= self._total:
            return False
        return now - self._printed_at >= self.every_s

    def write(self, text: str) -> None:
        """Print a line of its own (above the bar, when there is one)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            self._print(text)

    def close(self) -> None:
        """End the stage: close the bar, or print the closing line (count, time, rate)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            return
        elapsed = time.monotonic() - self._started
        rate = self._rate_text(time.monotonic()) if self.n else ""
        rate = f", {rate}" if rate else ""
        note = f"; {self.note}" if self.note else ""
        self._print(f"{self.desc}: {self._count()} in {format_seconds(elapsed)}{rate}{note}")
        self.enabled = False

    def line(self, now: float | None = None) -> str:
        """The progress line as it stands: count, percentage, rate, ETA, note."""
        now = time.monotonic() if now is None else now
        parts = [self._count()]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f} %)"
        rate = self._rate_text(now) if self.n else ""
        if rate:
            parts.append(rate)
        eta = self.eta(now)
        if eta is not None:
            parts.append(f"ETA {format_seconds(eta)}")
        if self.note:
            parts.append(self.note)
        return f"{self.desc}: " + ", ".join(parts)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at the rate measured since the first update (None when it cannot be told)."""
        now = time.monotonic() if now is None else now
        seconds_per_unit = self._seconds_per_unit(now)
        if not self.total or seconds_per_unit is None:
            return None
        return max(0, self.total - self.n) * seconds_per_unit

    def _seconds_per_unit(self, now: float) -> float | None:
        first_time, first_n = self._first if self._first is not None else (self._started, 0)
        if self.n > first_n and now - first_time >= _MIN_SPAN_S:
            return (now - first_time) / (self.n - first_n)
        if self.n and now - self._started >= _MIN_SPAN_S:  # one update so far: the time since the start is all there is
            return (now - self._started) / self.n
        return None

    def _rate_text(self, now: float) -> str:
        seconds = self._seconds_per_unit(now)
        if seconds is None or seconds <= 0:
            return ""
        return f"{seconds:.1f} s/{self.unit}" if seconds >= 1 else f"{1 / seconds:.1f} {self.unit}s/s"

    def _count(self) -> str:
        plural = self.unit if self.n == 1 and not self.total else self.unit + "s"
        return f"{self.n}/{self.total} {plural}" if self.total else f"{self.n} {plural}"

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or fake stream
        return False
