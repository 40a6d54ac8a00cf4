"""Keep a slow widget's picture with its slider: a cheap preview at once, the full picture
when the slider rests.

ipywidgets sends a dragged slider's next value only when the kernel has finished with the
last one, so a widget whose full redraw is slower than the hand makes the picture trail the
slider in visible jumps. `PreviewThenSettle` answers every change with a quick preview (the
widget decides what that is: fewer pixels, no side views) and draws the full picture once no
change has come for `delay` seconds, on the kernel's own event loop. Without a running loop
(plain Python, the unit tests' direct calls) there is no drag to keep up with: every change
draws the full picture at once, exactly as before.

Used by: the 3D Gaussian explorer (lesson 3), the one widget measured slower than its target
(tests/browser/test_browser_latency.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: how long a slider must rest before the full picture is drawn; short enough to feel instant
SETTLE_SECONDS = 0.15


class PreviewThenSettle:
    """Call `changed()` on every control change: `preview()` runs now, `full()` after the
    controls have rested `delay` seconds (each change restarts the wait)."""

    def __init__(
        self, preview: Callable[[], None], full: Callable[[], None], delay: float = SETTLE_SECONDS
    ) -> None:
        self.preview, self.full, self.delay = preview, full, delay
        self._pending: asyncio.TimerHandle | None = None

    @property
    def pending(self) -> bool:
        """True while a full redraw is waiting for the controls to rest."""
        return self._pending is not None

    def changed(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: nobody is dragging, draw it all now
            self.full()
            return
        if self._pending is not None:
            self._pending.cancel()
        self.preview()
        self._pending = loop.call_later(self.delay, self._settle)

    def _settle(self) -> None:
        self._pending = None
        self.full()
