"""The one progress display, for downloads (bytes) and training (steps): tqdm's bar.

On a terminal tqdm redraws the bar in place, fitted to the window's width. In a log file (or a pipe)
the same line is printed every 10% of the way and at the end, one line each, instead of the carriage
returns a live bar would leave there.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class Progress:
    def __init__(
        self,
        total: int | None,
        *,
        desc: str,
        initial: int = 0,
        file=None,
        unit: str = "it",
        unit_scale: bool = False,
        bar_format: str | None = None,
        disable: bool = False,
    ):
        self.file = file or sys.stdout
        self.live = self.file.isatty() and not disable
        self.quiet = disable
        self.total, self.initial, self.desc, self.t0 = total, initial, desc, time.perf_counter()
        self.format = dict(
            prefix=desc, unit=unit, unit_scale=unit_scale, bar_format=bar_format, ncols=80
        )
        self.bar = tqdm(
            total=total,
            initial=initial,
            desc=desc,
            file=self.file,
            unit=unit,
            unit_scale=unit_scale,
            bar_format=bar_format,
            dynamic_ncols=True,
            mininterval=0.2,
            disable=not self.live,
        )
        self.position = initial
        self.next_mark = self._mark(initial)

    def _mark(self, position: int) -> float:
        return position + max((self.total or 0) // 10, 1) if self.total else float("inf")

    def update(self, position: int, postfix: str = "", final: bool = False) -> None:
        """Moves the bar to `position` (absolute) with the text `postfix`; `final` ends it."""
        self.position = position
        if self.live:
            self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.update(position - self.bar.n)
            if final:
                self.bar.close()
        elif not self.quiet and (final or position >= self.next_mark):
            self.next_mark = self._mark(position)
            elapsed = time.perf_counter() - self.t0
            rate = (position - self.initial) / elapsed if elapsed > 0 else None
            print(
                tqdm.format_meter(
                    position, self.total, elapsed, rate=rate, postfix=postfix, **self.format
                ),
                file=self.file,
                flush=True,
            )
