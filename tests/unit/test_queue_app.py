"""The producer-side Celery app's broker options that decide how fast dead workers' messages
come back."""

from __future__ import annotations

import pytest

from routeq.config import Settings
from routeq.queue.app import create_app, sweep_lock_expiry


def test_a_dead_sweepers_lock_does_not_hold_back_redelivery_for_minutes() -> None:
    # Given the default limits
    settings = Settings()
    # When the app is configured
    options = create_app(settings, "redis://127.0.0.1:6379/0").conf.broker_transport_options
    # Then a sweeper killed mid-sweep blocks the others for two sweeps (seconds), not for
    # kombu's five minutes, and well within the visibility timeout
    assert options["visibility_timeout"] == settings.time_limits.visibility_s
    assert options["unacked_mutex_expire"] == 2 * options["unacked_restore_interval"]
    assert options["unacked_mutex_expire"] <= 20 < options["visibility_timeout"]


@pytest.mark.parametrize(("visibility", "expiry"), [(1, 5), (16, 6), (50, 20), (3600, 20)])
def test_the_sweep_lock_expiry_follows_the_sweep_interval(visibility: int, expiry: int) -> None:
    assert sweep_lock_expiry(visibility) == expiry
