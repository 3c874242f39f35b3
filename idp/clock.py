"""An injectable clock, so tests can jump days without sleeping."""

from __future__ import annotations

import time

from flask import current_app


class Clock:
    """Wall-clock seconds since the epoch, plus an offset tests may move."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def now() -> int:
    """Current time in whole seconds from the app's clock."""
    return int(current_app.extensions["idp.clock"].now())
