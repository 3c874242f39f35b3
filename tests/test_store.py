"""The ephemeral store contract: the SQL and Redis implementations pass this same module."""

from __future__ import annotations

import threading
import uuid

import pytest

from idp.store.redis import RedisStore
from idp.store.sql import SQLStore
from tests.conftest import REDIS_URL, _service_missing


@pytest.fixture(params=["sql", "redis"])
def store(request, app):
    clock = app.extensions["idp.clock"]
    if request.param == "sql":
        from idp.db import db

        with app.app_context():
            yield SQLStore(db.engine, clock=clock)
        return
    try:
        store = RedisStore.from_url(REDIS_URL, clock=clock, prefix=f"idptest:{uuid.uuid4().hex}:")
        store.r.ping()
    except Exception as exc:
        _service_missing("Redis", exc)
    yield store
    keys = list(store.r.scan_iter(store.prefix + "*"))
    if keys:
        store.r.delete(*keys)


def test_put_then_get_returns_the_value(store):
    store.put("k", {"a": 1, "b": ["x"]}, 60)
    assert store.get("k") == {"a": 1, "b": ["x"]}


def test_put_replaces_an_existing_value(store):
    store.put("k", {"v": 1}, 60)
    store.put("k", {"v": 2}, 60)
    assert store.get("k") == {"v": 2}


def test_missing_key_reads_as_none(store):
    assert store.get("absent") is None
    assert store.take("absent") is None


def test_take_returns_the_value_once(store):
    store.put("code", {"user": "u1"}, 60)
    assert store.take("code") == {"user": "u1"}
    assert store.take("code") is None
    assert store.get("code") is None


def test_delete_removes_every_named_key(store):
    store.put("a", {}, 60)
    store.put("b", {}, 60)
    store.delete("a", "b", "never-there")
    assert store.get("a") is None and store.get("b") is None


def test_add_stores_only_when_absent(store):
    assert store.add("jti", {"n": 1}, 60) is True
    assert store.add("jti", {"n": 2}, 60) is False
    assert store.get("jti") == {"n": 1}


def test_incr_counts_from_one(store):
    assert [store.incr("counter", 60) for _ in range(3)] == [1, 2, 3]


def test_values_expire_after_their_ttl(store, clock):
    store.put("short", {"x": 1}, 1)
    store.put("long", {"x": 2}, 3600)
    if isinstance(store, RedisStore):
        # Redis keeps its own time; check the TTL it was given instead of sleeping.
        assert 0 < store.r.ttl(store.prefix + "short") <= 1
        assert store.r.ttl(store.prefix + "long") > 3000
        return
    clock.advance(2)
    assert store.get("short") is None
    assert store.take("short") is None
    assert store.get("long") == {"x": 2}
    assert store.add("short", {"x": 3}, 60) is True
    assert store.incr("short-counter", 1) == 1
    clock.advance(2)
    assert store.incr("short-counter", 60) == 1


def race(n: int, fn):
    """Run ``fn`` in ``n`` threads released at the same instant; return their results."""
    results: list[object] = []
    barrier = threading.Barrier(n)

    def run() -> None:
        barrier.wait()
        results.append(fn())

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_takes_of_one_key_give_exactly_one_value(store):
    """Two exchanges of one authorization code: exactly one wins."""
    for round_ in range(20):
        store.put(f"code-{round_}", {"round": round_}, 60)
        results = race(4, lambda r=round_: store.take(f"code-{r}"))
        assert sum(r is not None for r in results) == 1, results


def test_concurrent_adds_of_one_key_admit_exactly_one(store):
    results = race(4, lambda: store.add("once", {}, 60))
    assert results.count(True) == 1


def test_ping_reports_a_reachable_store(store):
    assert store.ping() is True
