"""One worker runtime per process and thread: a thread pool's tasks must not share the state of
a delivery (the hop it claimed, its slot, the requests it has not recorded yet)."""

from __future__ import annotations

import threading
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
