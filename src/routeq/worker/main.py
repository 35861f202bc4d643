"""The module Celery workers load (``celery -A routeq.worker.main``; ``routeq worker`` does it).

Settings come from the config file and ``ROUTEQ_*`` variables; the database and broker must be
given there (``routeq worker`` starts the embedded ones and passes their URLs when unset).

A worker builds its routing policy when it starts (``worker_init``, in the main process before
the pool forks), not at its first route step: a missing or corrupt trained artifact stops the
worker with the reason and exit status 4 before it consumes a message. Beat, Flower and
``celery inspect`` load this module too and never build the policy.
"""

from __future__ import annotations

import sys

from celery.signals import worker_init

from routeq.config import load_settings
from routeq.errors import ConfigError
from routeq.exitcodes import ExitCode, failure_for
from routeq.judges.answer_features import AnswerVerifier
from routeq.policies import Policy
from routeq.queue.app import create_app
from routeq.tokens import preload as preload_tokenizer
from routeq.worker.runtime import (
    build_runtime,
    configure_runtime,
    policy_at_start,
    verifier_at_start,
)
from routeq.worker.tasks import register_tasks

settings = load_settings()
if settings.database_url is None or settings.broker_url is None:
    raise ConfigError(
        "workers need ROUTEQ_DATABASE_URL and ROUTEQ_BROKER_URL (or database_url/broker_url in "
        "the config file); `routeq worker` sets them for the embedded default"
    )
database_url: str = settings.database_url
app = create_app(settings, settings.broker_url)
register_tasks(app)

# The policy built at worker start. None until then, and for good in beat, Flower and
# `celery inspect`; a runtime built without it builds its own.
_policy: Policy | None = None
_verifier: AnswerVerifier | None = None


@worker_init.connect
def _build_policy_at_start(**_: object) -> None:
    """Build the routing policy once per worker, before the pool starts (and load the
    tokenizer's tables, so that pool children share them).

    Celery logs and ignores an ``Exception`` from a signal receiver, so a bad artifact is
    turned into ``SystemExit`` here: the reason on stderr as ``routeq`` prints it (``error:
    trained expected-gain artifact /x/router.rqa does not exist: ...``), exit status 4."""
    global _policy, _verifier
    try:
        _policy = policy_at_start(settings)
        _verifier = verifier_at_start(settings)
        preload_tokenizer()  # every call step counts tokens: load once, before the fork
    except Exception as error:  # Celery would log and ignore it: the worker must not start
        failure = failure_for(error) if isinstance(error, ConfigError) else None
        lines = failure.lines if failure is not None else [f"error: {error}"]
        print("routeq worker: cannot start", *lines, sep="\n", file=sys.stderr, flush=True)
        raise SystemExit(ExitCode.SETUP) from None


configure_runtime(
    lambda: build_runtime(settings, database_url, app, policy=_policy, verifier=_verifier)
)
