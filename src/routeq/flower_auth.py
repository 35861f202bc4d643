"""Flower with basic auth on every page: ``python -m routeq.flower_auth -A APP flower ...``.

Flower checks its ``--basic-auth`` credentials on its pages and API, but serves ``/metrics`` and
``/healthcheck`` to anyone. ``/metrics`` lists every worker node, task name and queue, and
routeq promises that nothing of Flower is served without authentication. Flower has no option
for it, so this entry module makes both handlers check the same credentials before starting
Celery's command line (which runs Flower) in the same process. ``routeq flower`` starts Flower
through it.

Probes then need the credentials too: ``python -m routeq.flower_auth healthcheck [URL]`` asks
``/healthcheck`` with the first pair of ``ROUTEQ_FLOWER_BASIC_AUTH`` from its environment (so
the password stays off the command line) and exits 0 on a 200, 1 otherwise.
"""

from __future__ import annotations

import base64
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

DEFAULT_HEALTHCHECK_URL = "http://127.0.0.1:5555/healthcheck"
CREDENTIALS_VARIABLE = "ROUTEQ_FLOWER_BASIC_AUTH"


def require_credentials(handler: Any) -> None:
    """``prepare`` for Flower's open handlers: 401 unless the request carries valid credentials.

    Flower's own ``get_current_user`` compares the Authorization header with ``--basic-auth``
    (in constant time) and raises a 401 on a missing or wrong one; it returns True when no
    credentials are configured at all, so that case is refused here: a misconfigured Flower
    must not turn these endpoints back into open ones.
    """
    from tornado.web import HTTPError

    if not handler.application.options.basic_auth or not handler.current_user:
        raise HTTPError(401)


def protect_open_endpoints() -> None:
    """Make ``/metrics`` and ``/healthcheck`` require the basic-auth credentials. Idempotent."""
    from flower.views import monitor

    for view in (monitor.Metrics, monitor.Healthcheck):
        view.prepare = require_credentials


def healthcheck(url: str, credentials: str, timeout_s: float = 5.0) -> bool:
    """Whether ``url`` answers 200 to a request with ``credentials`` (``user:password``)."""
    request = urllib.request.Request(url)
    token = base64.b64encode(credentials.encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``healthcheck [URL]``, or else Celery's command line with Flower's open endpoints
    protected."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["healthcheck"]:
        url = args[1] if len(args) > 1 else DEFAULT_HEALTHCHECK_URL
        credentials = os.environ.get(CREDENTIALS_VARIABLE, "").split(",")[0]
        raise SystemExit(0 if credentials and healthcheck(url, credentials) else 1)
    protect_open_endpoints()
    from celery.bin.celery import main as celery_main

    sys.argv = ["celery", *args]  # Flower parses its own options from sys.argv
    raise SystemExit(celery_main())


if __name__ == "__main__":
    main()
