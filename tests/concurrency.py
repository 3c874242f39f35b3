"""Run calls at the same moment, one thread each: the race tests of single-use things."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from flask import Flask


def race(*calls: Callable[[], Any], app: Flask | None = None,
         timeout: float = 60) -> list[Any]:
    """Start every call together (a barrier) and return what each returned, in order.

    An exception is returned in its call's place, so the test sees every outcome. With
    ``app`` each call runs in its own application context and database session, as a
    request of its own would (test clients need none: each request has its own).
    """
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            if app is None:
                results[i] = call()
                return
            with app.app_context():
                from idp.db import db

                try:
                    results[i] = call()
                finally:
                    db.session.remove()
        except Exception as exc:  # an outcome like any other; the test asserts on it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return results
