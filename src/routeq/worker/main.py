"""The module Celery workers load (``celery -A routeq.worker.main``; ``routeq worker`` does it).

Settings come from the config file and ``ROUTEQ_*`` variables; the database and broker must be
given there (``routeq worker`` starts the embedded ones and passes their URLs when unset).
"""

from __future__ import annotations

from routeq.config import load_settings
from routeq.errors import ConfigError
from routeq.queue.app import create_app
from routeq.worker.runtime import build_runtime, configure_runtime
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
configure_runtime(lambda: build_runtime(settings, database_url, app))
