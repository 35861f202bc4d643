"""``Client()`` connects to a configured routeq and starts nothing; the embedded default is
``Client.local()``'s (or the command line's) to start."""

from __future__ import annotations

from pathlib import Path

import pytest

from routeq import Client, ConfigError
from routeq.config import load_settings
from routeq.embedded import stop


@pytest.mark.parametrize(
    ("configured", "missing"),
    [
        ({}, "database_url and broker_url"),
        ({"database_url": "postgresql://nobody@127.0.0.1:9/none"}, "broker_url"),
        ({"broker_url": "redis://127.0.0.1:9/0"}, "database_url"),
    ],
    ids=["nothing", "no-broker", "no-database"],
)
def test_client_without_configured_services_says_how_to_get_them(
    clean_env: Path, configured: dict[str, str], missing: str
) -> None:
    settings = load_settings(**configured)
    try:
        with pytest.raises(ConfigError) as raised:
            Client(settings)
    finally:
        if (clean_env / ".routeq").exists():  # the defect: Client() started embedded servers
            stop(settings)
    message = str(raised.value)
    assert f"{missing} not configured" in message
    assert "Client.local()" in message
    assert "ROUTEQ_DATABASE_URL" in message or "ROUTEQ_BROKER_URL" in message
    assert not (clean_env / ".routeq").exists(), "Client() started embedded servers"


def test_client_with_no_arguments_reads_the_environment_and_starts_nothing(
    clean_env: Path,
) -> None:
    try:
        with pytest.raises(ConfigError, match=r"Client\.local\(\)"):
            Client()
    finally:
        if (clean_env / ".routeq").exists():
            stop(load_settings())
    assert not (clean_env / ".routeq").exists()
