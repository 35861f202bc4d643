"""One worker runtime per process and thread: a thread pool's tasks must not share the state of
a delivery (the hop it claimed, its slot, the requests it has not recorded yet)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from routeq.worker import runtime


def test_each_thread_gets_its_own_runtime_and_keeps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a factory that counts what it builds
    built: list[object] = []

    def factory() -> Any:
        made = object()
        built.append(made)
        return made

    monkeypatch.setattr(runtime, "_factory", factory)
    runtime.reset_runtime()
    # When the main thread asks twice and two other threads ask once each
    here = [runtime.get_runtime(), runtime.get_runtime()]
    there: list[object] = []
    threads = [
        threading.Thread(target=lambda: there.append(runtime.get_runtime())) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then a thread keeps its runtime, and no two threads share one
    assert here[0] is here[1]
    assert len({id(r) for r in [here[0], *there]}) == 3 == len(built)
    runtime.reset_runtime()


def test_a_slot_just_taken_covers_its_first_attempt_but_not_a_longer_one() -> None:
    from routeq.worker.slots import HeldSlot

    # Given a slot taken for a 40 s lease a moment ago
    slot = HeldSlot("cheap", "q:2:abc", time.monotonic() + 40)
    # Then the attempt it was taken for needs no renewal; a slower fallback's does
    assert slot.covers(40) and slot.covers(40.5)
    assert not slot.covers(45)
    # and a renewal starts the count again
    assert slot.renewed(90).covers(90) and not slot.renewed(90).covers(100)
