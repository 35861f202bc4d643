"""A worker builds its routing policy at start: a policy it cannot build raises ConfigError
there (naming the artifact), and a worker that exits 4 for it is not restarted."""

from __future__ import annotations

from pathlib import Path

import pytest

from routeq.config import Settings
from routeq.errors import ConfigError
from routeq.exitcodes import ExitCode
from routeq.policies.rules import RulesPolicy
from routeq.worker.runtime import policy_at_start
from routeq.worker.supervisor import should_restart


def test_the_configured_policy_is_built_at_start(settings: Settings) -> None:
    assert isinstance(policy_at_start(settings), RulesPolicy)


def test_a_missing_trained_artifact_is_refused_at_start_naming_the_file(
    settings: Settings, tmp_path: Path
) -> None:
    artifact = tmp_path / "router.rqa"
    configured = Settings.model_validate(
        {
            **settings.model_dump(),
            "routing": {"policy": {"name": "knn", "artifact": str(artifact)}},
        }
    )
    with pytest.raises(ConfigError, match=f"trained knn artifact {artifact} does not exist"):
        policy_at_start(configured)


@pytest.mark.parametrize(
    ("returncode", "restart"), [(ExitCode.SETUP, False), (1, True), (2, True), (0, False)]
)
def test_a_worker_that_refused_its_configuration_is_not_restarted(
    returncode: int, restart: bool
) -> None:
    assert should_restart(returncode, stop_requested=False) is restart


@pytest.mark.parametrize("events", [False, True])
def test_a_worker_sends_task_events_only_when_configured(settings: Settings, events: bool) -> None:
    from routeq.cli import worker_argv
    from routeq.config import WorkerConfig

    configured = settings.model_copy(update={"worker": WorkerConfig(task_events=events)})
    argv = worker_argv(configured, ["route"], 2, "prefork", "info", "n@h")
    assert ("-E" in argv) is events
    assert argv[argv.index("-Q") + 1] == "route" and argv[argv.index("-n") + 1] == "n@h"
