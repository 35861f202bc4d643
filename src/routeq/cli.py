"""The ``routeq`` command line. Each command is a thin layer over the library."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from routeq.config import Settings, load_settings
from routeq.errors import ConfigError, UsageError
from routeq.exitcodes import CommandFailed, ExitCode, failure_for
from routeq.summary_spec import SummarySpec

if TYPE_CHECKING:
    import uuid

    from sqlalchemy import Engine

    from routeq.batch.report import OutputFormat
    from routeq.client import Result
    from routeq.evaluation.harness import Trainer
    from routeq.evaluation.outcomes import Example
    from routeq.learned.embeddings import Embedder
    from routeq.ledger.batches import DocumentResult

app = typer.Typer(
    help="routeq: queue-based LLM routing with a Postgres hop ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
embedded_app = typer.Typer(
    help="The embedded Postgres and Redis under the state directory.", no_args_is_help=True
)
batch_app = typer.Typer(help="Batches: progress and results.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(embedded_app, name="embedded")
app.add_typer(batch_app, name="batch")

# Outside a terminal (a pipe, a CI log) Rich would wrap every table at 80 columns; a fixed wide
# width keeps a row on one line there. COLUMNS, when set, still wins.
_PIPE_WIDTH = 200


def _console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, soft_wrap=stderr, width=_PIPE_WIDTH if wide else None)


console = _console()
err_console = _console(stderr=True)


def _settings() -> Settings:
    return load_settings()


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"routeq {version('routeq')}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main_options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """routeq: queue-based LLM routing with a Postgres hop ledger."""


@db_app.command("upgrade")
def db_upgrade(
    wait: Annotated[
        float, typer.Option(help="seconds to wait for the database to accept connections")
    ] = 0.0,
) -> None:
    """Apply the Alembic migrations to the configured (or embedded) database."""
    from routeq.ledger.migrate import upgrade, wait_for_database
    from routeq.ledger_access import database_url

    with database_url(_settings(), check_schema=False) as url:  # the database, nothing else
        wait_for_database(url, wait)
        upgrade(url)
    console.print("database schema is up to date")


@db_app.command("roles")
def db_roles(
    prefix: Annotated[str, typer.Option(help="role names start with this")] = "routeq_",
    apply: Annotated[
        bool, typer.Option("--apply", help="create them in the database (as its owner)")
    ] = False,
) -> None:
    """Print (or --apply) the SQL of the worker, reporting and gateway roles (docs/roles.md)."""
    from routeq.ledger import make_engine
    from routeq.ledger.roles import apply_roles, role_statements
    from routeq.ledger_access import database_url

    try:
        statements = role_statements(prefix)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not apply:
        typer.echo(";\n".join(statements) + ";")
        return
    with database_url(_settings()) as url:
        engine = make_engine(url, pool_size=1)
        try:
            apply_roles(engine, prefix)
        finally:
            engine.dispose()
    console.print(f"roles {prefix}worker, {prefix}reporting and {prefix}gateway are up to date")


@app.command()
def worker(
    queues: Annotated[
        list[str] | None,
        typer.Option(
            "--queue", "-Q", help="queue to consume (repeatable): route, judge, tier.NAME"
        ),
    ] = None,
    tiers: Annotated[list[str] | None, typer.Option("--tier", help="consume tier.NAME")] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            help="processes; default: the tier's max_concurrency for one --tier, else 2",
        ),
    ] = None,
    pool: Annotated[str, typer.Option(help="prefork, threads or solo")] = "prefork",
    loglevel: Annotated[str, typer.Option()] = "info",
    name: Annotated[str | None, typer.Option(help="worker node name")] = None,
    supervise: Annotated[
        bool,
        typer.Option(
            "--supervise/--no-supervise",
            help="restart the Celery worker when it exits on its own (default); "
            "--no-supervise replaces this process with it",
        ),
    ] = True,
) -> None:
    """Run a Celery worker. With no --queue/--tier it consumes every routeq queue.

    By default the worker runs as a child that is restarted (with a capped backoff) when it
    exits on its own: a Redis restart can end Celery's main process, and a bare `routeq worker`
    would then leave its queue without a consumer. Stop signals are forwarded to it.
    """
    from routeq.queue.app import queue_names

    settings = _settings()
    known = queue_names(settings)
    chosen = list(queues or []) + [settings.tier(tier).queue for tier in tiers or []]
    unknown = [queue for queue in chosen if queue not in known]
    if unknown:
        raise UsageError(
            f"unknown queue(s) {', '.join(unknown)}; routeq's queues: {', '.join(known)}"
        )
    env = _celery_env(settings)
    selected = chosen or known
    if concurrency is None:
        concurrency = settings.tier(tiers[0]).max_concurrency if tiers and len(chosen) == 1 else 2
    # Computed once, so a restarted child keeps the node name the health checks ping.
    node = name or f"routeq-{'+'.join(q.replace('tier.', '') for q in selected)}-{os.getpid()}@%h"
    argv = worker_argv(settings, selected, concurrency, pool, loglevel, node)
    sys.stdout.flush()
    if not supervise:
        os.execvpe(sys.executable, argv, env)  # the worker replaces this process
    from routeq.worker.supervisor import supervise as run_supervised

    raise SystemExit(run_supervised(argv, env))


def worker_argv(
    settings: Settings, queues: list[str], concurrency: int, pool: str, loglevel: str, node: str
) -> list[str]:
    """The Celery worker's command line. Task events (``-E``) only when ``worker.task_events``
    asks for them: they cost about four Redis publishes per hop, and Flower switches them on in
    the workers it watches when it connects."""
    events = ["-E"] if settings.worker.task_events else []
    return [
        *_celery_command("worker"),
        "-Q",
        ",".join(queues),
        "-c",
        str(concurrency),
        "--pool",
        pool,
        "--loglevel",
        loglevel,
        "-n",
        node,
        *events,
        "--without-gossip",
        "--without-mingle",
    ]


@app.command()
def submit(
    text: Annotated[str, typer.Argument(help="the query; '-' reads it from standard input")],
    metadata: Annotated[list[str] | None, typer.Option("--meta", help="KEY=VALUE")] = None,
    user: Annotated[str | None, typer.Option()] = None,
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="wait for the answer")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait")] = 120.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Enqueue a query; print its id (and with --wait, the result)."""
    from routeq.client import Client

    if text == "-":
        text = sys.stdin.read()
    meta: dict[str, str] = {}
    for pair in metadata or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--meta expects KEY=VALUE, got {pair!r}")
        meta[key] = value
    settings = _settings()
    _require_ledger(settings)
    # The local stack (routeq.local): the embedded default where nothing is configured, and
    # with --wait on the embedded broker, workers of this command's own to answer the query.
    with Client.local(settings, workers=None if wait else 0) as client:
        for what in client.started:
            err_console.print(f"started {what}", highlight=False)
        handle = client.submit(text, metadata=meta, user=user, idempotency_key=idempotency_key)
        if not wait:
            console.print(
                str(handle.query_id)
                if not as_json
                else json.dumps({"query_id": str(handle.query_id), "created": handle.created}),
                highlight=False,
            )
            return
        _print_result(handle.wait(timeout), as_json)


@app.command()
def feedback(
    query_id: str,
    thumbs_up: Annotated[
        bool, typer.Option("--thumbs-up/--thumbs-down", help="the rating (default: down)")
    ] = False,
    comment: Annotated[str | None, typer.Option(help="what was wrong (or right)")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="wait for the re-run's answer")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait")] = 120.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Rate a finished answer. A thumbs-down on an answer below the top tier re-runs the query
    one tier up; prints the re-run's id (with --wait, its result)."""
    from routeq.client import Client

    settings = _settings()
    _require_ledger(settings)
    with Client.local(settings, workers=None if wait else 0) as client:
        for what in client.started:
            err_console.print(f"started {what}", highlight=False)
        given = client.feedback(query_id, thumbs_down=not thumbs_up, comment=comment)
        rerun = given.rerun
        if as_json and not (wait and rerun is not None):
            document = {
                "feedback_id": given.feedback_id,
                "query_id": str(given.query_id),
                "answered_on": given.answered_on,
                "rerun_id": None if rerun is None else str(rerun.query_id),
                "rerun_created": bool(rerun and rerun.created),
            }
            console.print(json.dumps(document), highlight=False)
            return
        if rerun is None:
            why = (
                "thumbs-up"
                if thumbs_up
                else f"its tier, {given.answered_on}, is the top tier or not on the ladder"
            )
            console.print(f"recorded feedback {given.feedback_id} (no re-run: {why})")
            return
        state = "re-running" if rerun.created else "already re-run"
        err_console.print(
            f"recorded feedback {given.feedback_id}; {state} above {given.answered_on}: "
            f"{rerun.query_id}",
            highlight=False,
        )
        if wait:
            _print_result(rerun.wait(timeout), as_json)
        else:
            console.print(str(rerun.query_id), highlight=False)


@app.command()
def status(
    query_id: str,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a query's state, answer and hops. Exits 1 when the query failed."""
    from routeq.ledger_access import reading_client

    with reading_client(_settings()) as client:
        _print_result(client.status(query_id), as_json)


def _require_ledger(settings: Settings) -> None:
    """A configured database must carry this routeq's schema before a command writes to it
    (the embedded one is migrated when it is resolved)."""
    from routeq.ledger_access import require_schema

    if settings.database_url is not None:
        require_schema(settings.database_url)


def _print_result(result: Result, as_json: bool) -> None:
    """Print a query for ``routeq submit --wait`` and ``routeq status``; a failed query then
    raises CommandFailed (exit 1) with its reason. Everything shown is scrubbed of API keys and
    passwords first: the reasons and hop errors hold provider and httpx texts, which can quote
    a key (ledger rows written before scrubbing existed still do). The answer loses only known
    secrets: credential-shaped text in it is usually an example."""
    from dataclasses import replace

    from routeq import jsonout
    from routeq.secrets import scrub

    def clean(text: str | None) -> str | None:
        return None if text is None else scrub(text)

    result = replace(
        result,
        reason=clean(result.reason),
        answer=None if result.answer is None else scrub(result.answer, generic=False),
        hops=[
            replace(hop, reason=clean(hop.reason), error=clean(hop.error)) for hop in result.hops
        ],
    )
    if as_json:
        data = {**asdict(result), "tier_path": result.tier_path}
        console.print_json(jsonout.dumps(data))  # costs as numbers; ids and times as text
    else:
        _print_result_text(result)
    if result.status == "failed":
        raise CommandFailed(
            f"query {result.query_id} failed:", [result.reason or "no reason recorded"]
        )


def _print_result_text(result: Result) -> None:
    from routeq.report import hops_table

    console.print(
        f"query {result.query_id}: [bold]{result.status}[/bold]"
        f"  tier path: {' → '.join(result.tier_path) or '-'}"
        f"  cost: ${result.total_cost:.6f}"
    )
    if result.reason:
        console.print(f"reason: {result.reason}", markup=False, highlight=False)
    console.print(hops_table(result.hops))
    if result.answer is not None:
        console.print(f"answer ({result.final_tier}/{result.final_model}):")
        console.print(result.answer, markup=False, highlight=False)


@app.command("sim-server")
def sim_server(
    port: Annotated[int, typer.Option()] = 8765,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    seed: Annotated[int, typer.Option()] = 0,
    config: Annotated[Path | None, typer.Option(help="TOML file of simulated models")] = None,
    request_log: Annotated[
        Path | None,
        typer.Option(help="append the ledger id of every chat request received (ids only)"),
    ] = None,
) -> None:
    """Serve SIMULATED models over an OpenAI-compatible API (for tests, demos, benchmarks)."""
    import time

    from routeq.sim import SimServer, default_sim_config, load_sim_config

    sim_config = load_sim_config(config) if config else default_sim_config(seed)
    _exit_on_sigterm()
    with SimServer(sim_config, host=host, port=port, request_log=request_log) as server:
        console.print(
            f"SIMULATED model server on {server.url} (seed {sim_config.seed}); "
            f"models: {', '.join(sim_config.models)}. Answers are not from a real model."
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


@app.command()
def demo(
    queries: Annotated[int, typer.Option(help="how many queries to run")] = 24,
    seed: Annotated[int, typer.Option()] = 0,
    keep_running: Annotated[bool, typer.Option(help="leave embedded servers running")] = False,
) -> None:
    """Run the whole pipeline locally on simulated models and print what routing saved."""
    from routeq.demo import run_demo

    run_demo(_settings(), queries=queries, seed=seed, keep_running=keep_running, console=console)


@app.command()
def summarize(
    paths: Annotated[
        list[str], typer.Argument(help="files, directories (recursive), glob patterns, .jsonl")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="results file (.jsonl or .md)")],
    output_format: Annotated[
        str | None, typer.Option("--format", help="jsonl or md (default: from --out's suffix)")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="batch name (default: derived from the paths and spec)")
    ] = None,
    min_words: Annotated[int | None, typer.Option(help="shortest summary, in words")] = None,
    max_words: Annotated[int | None, typer.Option(help="longest summary, in words")] = None,
    language: Annotated[str | None, typer.Option(help="en, de, fr, es, it, pt or nl")] = None,
    style: Annotated[str | None, typer.Option(help="paragraph or bullets")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="follow until done")] = True,
    timeout: Annotated[float, typer.Option(help="seconds to follow the batch")] = 3600.0,
    workers: Annotated[
        int | None,
        typer.Option(
            help="processes per local worker group (default: 2 on the embedded default, else 0)"
        ),
    ] = None,
) -> None:
    """Summarise documents as a batch; the same command again resumes it and pays nothing twice.

    Exits 1 when documents failed (listed on stderr), 2 when an input path does not exist."""
    from routeq.batch import follow
    from routeq.batch.overview import work_units
    from routeq.client import Client
    from routeq.local import local_stack

    settings = _settings()
    spec = _summary_spec(settings, min_words, max_words, language, style)
    fmt = _output_format(out, output_format)
    _refuse_missing_inputs(paths)
    starts_workers = (workers is None and settings.broker_url is None) or bool(workers)
    if not wait and starts_workers:
        raise UsageError(
            "--no-wait would stop this command's own workers at once; run `routeq worker` "
            "separately and pass --workers 0 (or configure broker_url for deployed workers)"
        )
    with local_stack(settings, workers=workers) as stack:
        for what in stack.started:
            err_console.print(f"started {what}", highlight=False)
        local = stack.worker_log is not None
        with Client(stack.settings) as client:
            with follow.interruptible() as stopping:
                handle = client.submit_batch(paths, name=name, spec=spec, should_stop=stopping)
            follow.print_registration(console, handle)
            if handle.interrupted:
                follow.print_interrupted(err_console, handle, local=local)
                raise SystemExit(130)
            if not wait:
                return
            engine = client.batches.engine
            try:
                progress = follow.follow(
                    console,
                    handle.progress,
                    lambda: work_units(engine, handle.id),
                    timeout=timeout,
                )
            except KeyboardInterrupt:
                progress = None
            # Whatever happened, write what there is: finished summaries are never held back.
            results = follow.write_and_report(
                console,
                client.batches,
                client.settings,
                handle.id,
                out,
                fmt,
                spent_at_start=handle.spent_at_start,
            )
            if progress is None or not progress.complete:
                follow.print_interrupted(err_console, handle, local=local, timeout=progress)
                raise SystemExit(ExitCode.INTERRUPTED if progress is None else ExitCode.TIMEOUT)
            _raise_for_documents(results, handle.id)


def _refuse_missing_inputs(paths: list[str]) -> None:
    """A path that does not exist (and matches nothing as a pattern) is almost always a typo:
    refuse it before anything starts, rather than record a batch of one rejected input.
    Unreadable or unsupported files that do exist are still rejected per document."""
    import glob

    missing = [
        raw
        for raw in paths
        if not (Path(raw).exists() or Path(raw).is_symlink())
        and not (glob.has_magic(raw) and glob.glob(raw, recursive=True))
    ]
    if missing:
        shown = ", ".join(repr(raw) for raw in missing)
        raise UsageError(
            f"no such file or directory, and no file matches it as a pattern: {shown}; "
            "check the path (and quote patterns so the shell does not expand them)"
        )


def _raise_for_documents(results: list[DocumentResult], batch_id: uuid.UUID) -> None:
    """Rejected inputs are a warning; failed documents fail the command (exit 1)."""
    from routeq.batch import follow

    follow.warn_rejected(err_console, results)
    failure = follow.failures(results, batch_id)
    if failure is not None:
        raise failure


@batch_app.command("status")
def batch_status(
    ref: Annotated[str, typer.Argument(help="batch id or name")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a batch's documents by state and its spend so far. Exits 1 when documents failed.

    Reads the database only: nothing else is started, and an embedded Postgres it had to
    start is stopped again."""
    from routeq import jsonout
    from routeq.batch import follow
    from routeq.batch.overview import work_units
    from routeq.ledger.batches import BatchStore
    from routeq.ledger_access import ledger_engine

    with ledger_engine(_settings()) as engine:
        store = BatchStore(engine)
        info = store.find(ref)
        progress = store.progress(info.id)
        units = work_units(engine, info.id)
        failed = store.results(info.id) if progress.failed else []
    if as_json:
        console.print_json(jsonout.dumps(follow.status_record(info.id, info.name, progress, units)))
    else:
        follow.print_status(console, info.id, info.name, progress)
    failure = follow.failures(failed, info.id)
    if failure is not None:
        raise failure


@batch_app.command("list")
def batch_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every batch, newest first: name, id, documents, done and failed, spend, created."""
    from routeq import jsonout
    from routeq.batch.overview import list_batches
    from routeq.batch.report import batches_table
    from routeq.ledger_access import ledger_engine

    with ledger_engine(_settings()) as engine:
        found = list_batches(engine)
    if as_json:
        rows = [{**asdict(batch), "pending": batch.pending} for batch in found]
        console.print_json(jsonout.dumps(rows))
    elif found:
        console.print(batches_table(found))
    else:
        console.print("no batches yet: `routeq summarize PATH... --out FILE` creates one")


@batch_app.command("results")
def batch_results(
    ref: Annotated[str, typer.Argument(help="batch id or name")],
    out: Annotated[Path, typer.Option("--out", "-o", help="results file (.jsonl or .md)")],
    output_format: Annotated[
        str | None, typer.Option("--format", help="jsonl or md (default: from --out's suffix)")
    ] = None,
) -> None:
    """Write every document's summary (or state) so far, and print the totals. Exits 1 when
    documents failed (listed on stderr)."""
    from routeq.batch import follow
    from routeq.ledger.batches import BatchStore
    from routeq.ledger_access import ledger_engine

    fmt = _output_format(out, output_format)
    settings = _settings()
    with ledger_engine(settings) as engine:
        store = BatchStore(engine)
        info = store.find(ref)
        results = follow.write_and_report(console, store, settings, info.id, out, fmt)
    _raise_for_documents(results, info.id)


def _celery_command(subcommand: str, *, entry: str = "celery") -> list[str]:
    """``python -m ENTRY -A routeq.worker.main SUBCOMMAND``: a Celery program on routeq's app
    (``entry`` is ``celery``, or a module that wraps Celery's command line)."""
    return [sys.executable, "-m", entry, "-A", "routeq.worker.main", subcommand]


def _celery_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a Celery process (worker, Flower): connection URLs resolved (the
    embedded servers started when unset) and the config file."""
    from routeq.embedded import resolve_endpoints
    from routeq.local import worker_env

    endpoints = resolve_endpoints(settings)
    urls = {"database_url": endpoints.database_url, "broker_url": endpoints.broker_url}
    return worker_env(settings.model_copy(update=urls), **extra)


def _exit_on_sigterm() -> None:
    """Stop on SIGTERM like on Ctrl-C. As PID 1 in a container a process gets no default
    action for SIGTERM, so without a handler every stop would wait out the grace period."""
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def _summary_spec(
    settings: Settings,
    min_words: int | None,
    max_words: int | None,
    language: str | None,
    style: str | None,
) -> SummarySpec:
    from pydantic import ValidationError

    given = {"min_words": min_words, "max_words": max_words, "language": language, "format": style}
    merged = {**settings.summarize.spec.model_dump(), **{k: v for k, v in given.items() if v}}
    try:
        return SummarySpec(**merged)
    except ValidationError as error:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in error.errors())
        raise UsageError(f"invalid summary options: {problems}") from None


_SUFFIXES = {"md": (".md", ".markdown"), "jsonl": (".jsonl", ".json", ".ndjson")}


def _output_format(out: Path, given: str | None) -> OutputFormat:
    """The format from --format, else from --out's suffix. A --format that contradicts the
    suffix is obeyed (the user said so) but warned about: a Markdown digest in a ``.jsonl``
    file breaks whatever reads it as JSON lines."""
    suffix = out.suffix.lower()
    fmt = given or ("md" if suffix in _SUFFIXES["md"] else "jsonl")
    if fmt not in ("jsonl", "md"):
        raise UsageError(f"--format must be jsonl or md, got {fmt!r}")
    other = "jsonl" if fmt == "md" else "md"
    if given and suffix in _SUFFIXES[other]:
        err_console.print(
            Text(
                f"warning: writing {fmt} to {out}, whose suffix says {other}; "
                f"pass --format {other} or name the file *{_SUFFIXES[fmt][0]}",
                style="yellow",
            )
        )
    return "md" if fmt == "md" else "jsonl"


def _reconcile_once(grace_s: float | None, dry_run: bool) -> None:
    from routeq.embedded import resolve_endpoints
    from routeq.queue.app import create_app
    from routeq.worker.reconcile import reconcile
    from routeq.worker.runtime import build_runtime

    settings = _settings()
    _require_ledger(settings)
    endpoints = resolve_endpoints(settings)
    settings = settings.model_copy(
        update={"database_url": endpoints.database_url, "broker_url": endpoints.broker_url}
    )
    runtime = build_runtime(
        settings, endpoints.database_url, create_app(settings, endpoints.broker_url)
    )
    try:
        report = reconcile(runtime, grace_s=grace_s, dry_run=dry_run)
    finally:
        runtime.ledger.close()
    if not report.locked:
        raise CommandFailed("another reconciler run holds the lock; try again in a few seconds")
    if dry_run:
        console.print(f"would {report.summary(hops_only=True)} (dry run)")
        return
    console.print(report.summary())


@app.command()
def reconcile(
    grace: Annotated[
        float | None,
        typer.Option(help="seconds a live hop must be untouched; default worker.reconcile_grace_s"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="report, change nothing")] = False,
) -> None:
    """Run the reconciler once: re-publish hops whose message is lost or whose lease ran out,
    mark calls of dead workers as outcome unknown, move on queries left without a next step.
    Workers run it by themselves every worker.reconcile_interval_s (`routeq beat`)."""
    _reconcile_once(grace, dry_run)


@app.command()
def recover(
    older_than: Annotated[
        float, typer.Option(help="only hops untouched at least this many seconds")
    ] = 60.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list, do not publish")] = False,
) -> None:
    """The reconciler, run by hand with a longer grace (kept for runbooks written before the
    automatic reconciler: `routeq reconcile` is the same code)."""
    _reconcile_once(older_than, dry_run)


@app.command()
def beat(
    loglevel: Annotated[str, typer.Option()] = "warning",
) -> None:
    """Run Celery beat, which schedules the reconciler every worker.reconcile_interval_s. Run one
    (more are harmless: runs take an advisory lock); workers on the maintenance queue run it."""
    settings = _settings()
    env = _celery_env(settings)
    schedule = Path(os.environ.get("ROUTEQ_BEAT_SCHEDULE", str(settings.state_dir / "celerybeat")))
    schedule.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        *_celery_command("beat"),
        "--loglevel",
        loglevel,
        "--schedule",
        str(schedule),
    ]
    sys.stdout.flush()
    os.execvpe(sys.executable, argv, env)


@app.command()
def check(
    timeout: Annotated[float, typer.Option(help="seconds each check may take")] = 5.0,
    read_only: Annotated[
        bool,
        typer.Option(
            "--read-only", help="also check that the database role cannot write the ledger"
        ),
    ] = False,
) -> None:
    """Validate a deployment: config, database (reachable, migrated), broker, every endpoint;
    with --read-only, that the configured database role (a reporting one) cannot write."""
    from routeq.check import print_checks, run_checks

    results = run_checks(_settings(), timeout_s=timeout, read_only=read_only)
    print_checks(console, results)
    if not all(result.ok for result in results):
        raise SystemExit(1)


@app.command("eval")
def eval_command(
    dataset: Annotated[Path, typer.Option(help="outcome file to measure on (docs/evaluation.md)")],
    train: Annotated[
        Path | None, typer.Option(help="train on this file instead of cross-validating")
    ] = None,
    folds: Annotated[int, typer.Option(min=2, help="cross-validation folds")] = 5,
    seed: Annotated[int, typer.Option(help="seed of the fold assignment")] = 0,
    weak: Annotated[str | None, typer.Option(help="the weak model's name in the file")] = None,
    strong: Annotated[str | None, typer.Option(help="the strong model's name")] = None,
    exclude_domain: Annotated[
        list[str] | None, typer.Option(help="leave out a domain (e.g. high_school_mathematics)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="write the curves as JSON here")] = None,
    per_prompt: Annotated[bool, typer.Option(help="include each prompt's score in --out")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="draw the curves into this .svg or .png file")
    ] = None,
    weak_tier: Annotated[
        str | None, typer.Option(help="price the weak model as this tier (default: the first)")
    ] = None,
    strong_tier: Annotated[
        str | None, typer.Option(help="price the strong model as this tier (default: the top)")
    ] = None,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            help="router to measure (repeat): prompt-length (default), expected-gain, knn, "
            "matrix-factorisation, cascade, or NAME+cascade"
        ),
    ] = None,
    option: Annotated[
        list[str] | None, typer.Option(help="hyperparameter key=value for the trained routers")
    ] = None,
) -> None:
    """Measure a router on known outcomes, next to the random router and the oracle.

    Numbers are never measured on training data: by default each of --folds folds is scored
    by the router trained on the others; with --train, the router learns from that file.
    Costs are at the configured tiers' prices; docs/evaluation.md says how they are counted."""
    from routeq.evaluation.cost import cascaded, example_costs, tier_prices
    from routeq.evaluation.harness import (
        cross_validated,
        held_out,
        references,
        without_domain,
    )
    from routeq.evaluation.outcomes import models_of, observed_pairs, read_outcomes
    from routeq.evaluation.report import as_json, cost_caption, realised_shares, rows

    # Options that can be wrong are refused before the data is read and the router trained.
    plot_format = _plot_format(plot)
    prices = tier_prices(_settings().tiers, weak_tier, strong_tier)
    trainers = [_eval_trainer(name, _options(option)) for name in policy or ["prompt-length"]]
    examples = read_outcomes(dataset)
    for domain in exclude_domain or []:
        examples = without_domain(examples, domain)
    models = models_of(examples)  # on every example: the defaults
    # A file from `routeq export-outcomes` has outcomes only of the tiers that answered.
    seen = list(dict.fromkeys(model for e in examples for model in e.outcomes))
    if len(models) < 2 and (weak is None or strong is None):
        raise UsageError(
            f"{dataset}: need outcomes of two models on every example, found {models}; "
            f"name two of {', '.join(seen)} with --weak and --strong"
        )
    weak_model = weak or models[0]
    strong_model = strong or models[1]
    for name in (weak_model, strong_model):
        if name not in seen:
            raise UsageError(f"{dataset}: no outcomes of {name!r}; models: {', '.join(seen)}")
    paired = observed_pairs(examples, weak_model, strong_model)
    if len(paired) < len(examples):
        console.print(
            f"{len(examples) - len(paired)} of {len(examples)} examples dropped: they lack an "
            f"outcome of {weak_model} or of {strong_model} (only pairs observed together count)"
        )
    if not paired:
        raise UsageError(
            f"{dataset}: no example has outcomes of both {weak_model} and {strong_model}"
        )
    examples = paired
    for label, count, shares in realised_shares(examples):
        split = ", ".join(f"{tier} {share:.1%}" for tier, share in shares.items())
        console.print(f"routed on the ledger by {label}: {split} of {count}", highlight=False)
    costs = example_costs(examples, weak_model, strong_model, prices)
    training = read_outcomes(train) if train is not None else None
    try:
        measured = []
        for trainer in trainers:
            # A cascade pays the weak call on every query, escalated ones included.
            paid = cascaded(costs) if _is_cascade(trainer) else costs
            if training is not None:
                measured.append(
                    held_out(trainer, training, examples, weak_model, strong_model, paid)
                )
            else:
                measured.append(
                    cross_validated(trainer, examples, weak_model, strong_model, folds, seed, paid)
                )
        evaluations = [*measured, *references(examples, weak_model, strong_model, costs)]
    except (TypeError, ValueError) as error:  # overlapping data, no gap, a bad --option
        raise UsageError(f"{dataset}: {error}") from None
    from rich.table import Table

    header, *body = rows(evaluations)
    title = f"{dataset.name}: {len(examples)} prompts, {weak_model} vs {strong_model}"
    table = Table(*header, title=title, caption=cost_caption(evaluations, prices))
    for row in body:
        table.add_row(*row)
    console.print(table)
    if out is not None:
        data = as_json(
            evaluations,
            dataset=str(dataset),
            weak=weak_model,
            strong=strong_model,
            per_prompt=per_prompt,
            prices=prices,
        )
        out.write_text(json.dumps(data, indent=1) + "\n")
        console.print(f"curves: {out}")
    if plot is not None:
        if plot_format == "png":
            from routeq.evaluation.plot_png import png

            plot.write_bytes(png(evaluations, title))
        else:
            from routeq.evaluation.plot import svg

            plot.write_text(svg(evaluations, title), encoding="utf-8")
        console.print(f"plot: {plot}")


def _eval_trainer(name: str, options: dict[str, object]) -> Trainer:
    """The harness trainer of a router named on `routeq eval --policy`: prompt-length, a
    trainable kind, cascade, or either of the first two + cascade."""
    from routeq.evaluation.harness import PromptLength

    pre, plus, rest = name.partition("+")
    if plus and rest != "cascade":
        raise UsageError(f"--policy {name!r}: only NAME+cascade combines two routers")
    if name == "prompt-length":
        return PromptLength()
    try:
        from routeq.learned.cascade import CascadeTrainer, CombinedTrainer
        from routeq.learned.trainers import LearnedTrainer
        from routeq.training import check_kind
    except ImportError as error:
        raise ConfigError(
            f"--policy {name}: the trained routers need routeq's learn extra ({error.name} is "
            "missing): pip install 'routeq[learn]'"
        ) from None
    if name == "cascade":
        return CascadeTrainer()
    first: Trainer
    if pre == "prompt-length":
        first = PromptLength()
    else:
        check_kind(pre)
        first = LearnedTrainer(pre, _embedder(), options)
    return CombinedTrainer(first) if plus else first


def _is_cascade(trainer: Trainer) -> bool:
    """Whether ``trainer`` measures a cascade (only the learn extra builds those)."""
    from routeq.evaluation.harness import PromptLength

    if isinstance(trainer, PromptLength):
        return False
    from routeq.learned.cascade import is_cascade

    return is_cascade(trainer)


def _plot_format(plot: Path | None) -> str | None:
    """The format of ``--plot`` by its suffix; refused (exit 2) before any work, and a PNG
    without matplotlib refused as early (exit 4)."""
    if plot is None:
        return None
    suffix = plot.suffix.lower()
    if suffix not in (".svg", ".png"):
        raise UsageError(f"--plot {plot}: the file must end in .svg or .png, not {suffix!r}")
    if suffix == ".png":
        from routeq.evaluation.plot_png import require

        require()
    return suffix[1:]


@app.command("export-outcomes")
def export_outcomes(
    out: Annotated[Path, typer.Option("--out", "-o", help="outcome file to write (JSONL)")],
    since: Annotated[
        str | None, typer.Option(help="only queries created at or after this ISO date or time")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="at most this many queries")] = None,
    tier_as: Annotated[
        str, typer.Option(help="key outcomes by 'tier' name or by the tier's 'model'")
    ] = "tier",
) -> None:
    """Write the ledger's judged answers as an outcome file, to train and measure routers on
    your own traffic (docs/training-data.md): one line per closed user query, an outcome for
    each tier that answered it and was judged. Prints counts only."""
    from routeq.ledger import Ledger
    from routeq.ledger_access import ledger_engine
    from routeq.ledger_outcomes import describe, key_by, parse_since, write_outcomes

    keyed_by = key_by(tier_as)  # bad options are refused before the database is touched
    start = None if since is None else parse_since(since)
    with ledger_engine(_settings()) as engine:
        queries = Ledger(engine).judged_queries(since=start, limit=limit)
        counts = write_outcomes(queries, out, keyed_by)
    console.print(describe(counts, out), highlight=False)


@app.command()
def metrics(
    port: Annotated[int, typer.Option()] = 9464,
    address: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
) -> None:
    """Serve routeq's numbers for Prometheus on http://ADDRESS:PORT/metrics."""
    import time

    from prometheus_client import CollectorRegistry, start_http_server

    from routeq.broker import broker_client
    from routeq.embedded import resolve_endpoints
    from routeq.ledger import make_engine
    from routeq.metrics import LedgerCollector
    from routeq.queue.app import queue_names

    settings = _settings()
    _require_ledger(settings)  # every scrape reads the ledger
    endpoints = resolve_endpoints(settings)
    registry = CollectorRegistry()
    registry.register(
        LedgerCollector(
            make_engine(endpoints.database_url, pool_size=1),
            broker_client(endpoints.broker_url),
            queue_names(settings),
            settings,  # the ladder's series at 0, the top tier's prices for the savings
        )
    )
    _exit_on_sigterm()
    server, thread = start_http_server(port, addr=address, registry=registry)
    console.print(f"routeq metrics on http://{address}:{server.server_port}/metrics")
    try:
        while thread.is_alive():
            time.sleep(1)
    except KeyboardInterrupt:
        server.shutdown()


@app.command()
def report(
    by: Annotated[
        str, typer.Option(help="group by tier (routed), model (answered), day, user, tag, policy")
    ] = "tier",
    since: Annotated[str | None, typer.Option(help="from this ISO date or time (UTC)")] = None,
    until: Annotated[
        str | None, typer.Option(help="up to, not including, this date or time")
    ] = None,
    batch: Annotated[str | None, typer.Option(help="only this batch (name or id)")] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table, json, csv, or html (one page with plots)")
    ] = "table",
    check: Annotated[
        bool,
        typer.Option("--check", help="exit 1, saying why, when a limit of [alerts] is crossed"),
    ] = False,
) -> None:
    """What routing did: traffic share, cost, quality, escalations, errors and latency per
    group, from the ledger's views (see README "Reports")."""
    from routeq.alerts import breaches
    from routeq.ledger_access import ledger_engine
    from routeq.ledger_outcomes import parse_since
    from routeq.traffic_report import (
        FORMATS,
        GROUPINGS,
        Period,
        as_csv,
        as_json,
        as_tables,
        read_report,
    )

    if by not in GROUPINGS:
        raise UsageError(f"--by {by!r}: one of {', '.join(GROUPINGS)}")
    if output_format not in FORMATS:
        raise UsageError(f"--format {output_format!r}: one of {', '.join(FORMATS)}")
    start = None if since is None else parse_since(since)
    end = None if until is None else parse_since(until, "--until")
    if start is not None and end is not None and end <= start:
        raise UsageError(f"--until {until} is not after --since {since}")
    settings = _settings()
    _require_ledger(settings)
    with ledger_engine(settings) as engine:
        batch_id = None if batch is None else _batch_id(engine, batch)
        found = read_report(engine, by, Period(start, end, batch_id), settings.top_tier)  # type: ignore[arg-type]
        if output_format == "html":
            from routeq.html_report import as_html

            page = as_html(engine, found, settings.tiers, settings.alerts.max_escalation_rate)
    if output_format == "html":
        typer.echo(page, nl=False)
    elif output_format == "json":
        typer.echo(as_json(found))
    elif output_format == "csv":
        typer.echo(as_csv(found), nl=False)
    else:
        for table in as_tables(found):
            console.print(table)
    if check:
        total = found.total.figures()
        crossed = breaches(total, found.total.queries, settings.alerts)
        if crossed:
            raise CommandFailed(
                f"{len(crossed)} alert limit(s) crossed", [b.message for b in crossed]
            )
        err_console.print(f"alerts: no limit crossed ({found.total.queries} queries)")


@app.command()
def replay(
    policy: Annotated[str, typer.Option(help="the candidate: a [routing.policy] name")],
    option: Annotated[
        list[str] | None,
        typer.Option("--set", help="KEY=VALUE of the candidate's section (values read as JSON)"),
    ] = None,
    default_tier: Annotated[
        str | None, typer.Option(help="routing.default_tier for the candidate")
    ] = None,
    since: Annotated[str | None, typer.Option(help="from this ISO date or time (UTC)")] = None,
    until: Annotated[
        str | None, typer.Option(help="up to, not including, this date or time")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="at most this many queries")] = None,
    scratch_url: Annotated[
        str | None,
        typer.Option(
            help="a database to replay in (default: one created and dropped beside "
            "the ledger, which needs CREATEDB)"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """What a candidate policy would have done with past traffic: re-run the ledger's answer
    queries through the real steps in process, answered from the recorded calls, and compare
    its cost, top-tier share and escalations with what happened (README "Replay")."""
    from contextlib import nullcontext

    from pydantic import ValidationError

    from routeq.ledger import make_engine
    from routeq.ledger_access import database_url
    from routeq.ledger_outcomes import parse_since
    from routeq.replay import candidate_settings, read_past_queries, replay_past, scratch_database

    start = None if since is None else parse_since(since)
    end = None if until is None else parse_since(until, "--until")
    settings = _settings()
    try:
        candidate = candidate_settings(settings, policy, _set_options(option or []), default_tier)
    except (ValidationError, ValueError) as error:
        raise UsageError(f"--policy {policy}: {_first_error(error)}") from None
    with database_url(settings) as url:
        engine = make_engine(url, pool_size=1)
        try:
            past = read_past_queries(engine, start, end, limit)
        finally:
            engine.dispose()
        if not past:
            raise UsageError("no finished answer queries in the period to replay")
        err_console.print(f"replaying {len(past)} queries with {policy} ...")
        with nullcontext(scratch_url) if scratch_url else scratch_database(url) as scratch:
            result = replay_past(candidate, scratch, past)
    if as_json:
        from routeq.jsonout import plain

        typer.echo(json.dumps(plain(asdict(result)), indent=2))
    else:
        from routeq.replay import as_table

        console.print(as_table(result, settings.top_tier.name))
    if result.flagged_queries:
        err_console.print(
            f"{result.flagged_queries} of {result.actual.queries} queries needed an answer the "
            f"ledger does not have ({result.flagged_calls} calls): their cost is estimated and "
            "their verdicts assumed to pass"
        )


def _set_options(pairs: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs; a value is JSON when it parses (0.3, true, ["a"]), else text."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {pair!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _first_error(error: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}" if where else first["msg"]
    return str(error)


def _batch_id(engine: Engine, name_or_id: str) -> uuid.UUID:
    from routeq.ledger.batches import BatchStore

    return BatchStore(engine).find(name_or_id).id


def _ledger_examples(since: str | None, limit: int | None) -> list[Example]:
    """The ledger's judged answers as outcome examples (keyed by tier), via the export that
    `routeq export-outcomes` writes, into a private temporary file."""
    import tempfile

    from routeq.evaluation.outcomes import read_outcomes
    from routeq.ledger import Ledger
    from routeq.ledger_access import ledger_engine
    from routeq.ledger_outcomes import parse_since, write_outcomes

    start = None if since is None else parse_since(since)
    with tempfile.TemporaryDirectory(prefix="routeq-ledger-") as folder:
        path = Path(folder) / "outcomes.jsonl"
        with ledger_engine(_settings()) as engine:
            queries = Ledger(engine).judged_queries(since=start, limit=limit)
            counts = write_outcomes(queries, path, "tier")
        if counts.queries == 0:
            raise UsageError("the ledger holds no judged answers to learn from (yet)")
        return read_outcomes(path)


def _examples_from(
    dataset: Path | None, from_ledger: bool, since: str | None, limit: int | None
) -> tuple[list[Example], str]:
    if (dataset is None) == (not from_ledger):
        raise UsageError("give one source: --dataset FILE or --from-ledger")
    if dataset is not None:
        from routeq.evaluation.outcomes import read_outcomes

        return read_outcomes(dataset), str(dataset)
    return _ledger_examples(since, limit), "ledger" + (f" since {since}" if since else "")


def _options(pairs: list[str] | None) -> dict[str, object]:
    """--option key=value pairs as hyperparameters (numbers parsed; a,b lists for blocks)."""
    options: dict[str, object] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--option takes key=value, not {pair!r}")
        value: object
        try:
            value = int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                value = raw.split(",") if key == "blocks" else raw
        options[key.strip()] = value
    return options


def _embedder() -> Embedder:
    from routeq.learned.embeddings import shared_embedder

    settings = _settings()
    return shared_embedder(settings.state_dir / "embeddings.sqlite")


@app.command("train")
def train_command(
    policy: Annotated[
        str, typer.Option(help="expected-gain, knn, matrix-factorisation or cascade-verifier")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="the artifact to write")],
    dataset: Annotated[Path | None, typer.Option(help="outcome file to learn from")] = None,
    from_ledger: Annotated[
        bool, typer.Option("--from-ledger", help="learn from the ledger's judged answers")
    ] = False,
    since: Annotated[str | None, typer.Option(help="with --from-ledger: from this date")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="with --from-ledger: at most N")] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(help="a model or tier to learn, weakest first (repeat); default: all"),
    ] = None,
    option: Annotated[
        list[str] | None, typer.Option(help="hyperparameter key=value (docs/routing.md)")
    ] = None,
    folds: Annotated[int, typer.Option(min=0, help="cross-validation folds for the metrics")] = 5,
    seed: Annotated[int, typer.Option(help="seed of the fold assignment")] = 0,
) -> None:
    """Train a routing policy on known outcomes and write its versioned artifact.

    The artifact's metadata records the data, the date and the policy's cross-validated
    numbers on that data (folds that training never saw)."""
    from routeq.training import check_kind, order_labels, train_cascade_verifier, train_router

    verifier = policy == "cascade-verifier"
    if not verifier:
        check_kind(policy)
    examples, source = _examples_from(dataset, from_ledger, since, limit)
    settings = _settings()
    labels = order_labels(examples, label, settings.tier_names)
    # The ledger keeps the judge's grade; its verdict was the pass threshold.
    pass_score = settings.judge.pass_threshold / 10 if from_ledger else None
    try:
        if verifier:
            trained = train_cascade_verifier(
                examples,
                labels,
                out,
                source=source,
                folds=folds,
                seed=seed,
                pass_score=pass_score if pass_score is not None else 0.5,
            )
        else:
            trained = train_router(
                policy,
                examples,
                labels,
                out,
                embedder=_embedder(),
                options=_options(option),
                source=source,
                folds=folds,
                seed=seed,
                pass_score=pass_score,
            )
    except (TypeError, ValueError) as error:  # a bad hyperparameter, data without a gap
        raise UsageError(f"cannot train {policy}: {error}") from None
    console.print(
        f"{policy} trained on {len(examples)} examples ({source}), labels {', '.join(labels)}: "
        f"{out} version {trained.artifact.version}",
        highlight=False,
    )
    if trained.held_out is not None:
        summary = trained.held_out.summary
        share = summary.share_for_95pct_strong
        console.print(
            f"held out ({folds}-fold): APGR {summary.apgr:.3f}, strong share for 95% of "
            f"{labels[-1]}'s quality: {'never' if share is None else f'{share:.1%}'}",
            highlight=False,
        )


@app.command("calibrate")
def calibrate_command(
    policy: Annotated[str, typer.Option(help="the configured [routing.policy] name")],
    target_strong_share: Annotated[
        float | None, typer.Option(help="share of queries to send to the top tier, 0..1")
    ] = None,
    target_cost_per_query: Annotated[
        float | None, typer.Option(help="mean USD per query to aim at instead")
    ] = None,
    dataset: Annotated[Path | None, typer.Option(help="sample: an outcome file's prompts")] = None,
    from_ledger: Annotated[
        bool, typer.Option("--from-ledger", help="sample: the ledger's judged queries (--since)")
    ] = False,
    since: Annotated[str | None, typer.Option(help="with --from-ledger: from this date")] = None,
    limit: Annotated[int, typer.Option(min=1, help="sample at most this many queries")] = 5000,
    write: Annotated[bool, typer.Option(help="write the cost weight into the config file")] = True,
) -> None:
    """Set the policy's cost weight so that, on a sample of your traffic, the target share (or
    cost) is met; writes it to the config file and reports the realised shares."""
    from routeq.learned.configs import LearnedPolicyConfig
    from routeq.learned.policies import LearnedPolicy
    from routeq.policies.registry import build_configured_policy
    from routeq.training import calibrate, write_cost_weight

    settings = _settings()
    _embedder()  # the policy's embeddings then use the on-disk cache, as training did
    section = settings.routing.policy
    if section.name != policy or not isinstance(section, LearnedPolicyConfig):
        raise UsageError(
            f"the configured policy is {section.name!r}: set [routing.policy] name = "
            f"{policy!r} and its artifact in the config file first (docs/routing.md)"
        )
    built = build_configured_policy(settings)
    assert isinstance(built, LearnedPolicy)
    examples, source = _examples_from(dataset, from_ledger, since, limit)
    texts = [e.prompt for e in examples][:limit]
    result = calibrate(
        settings,
        built,
        texts,
        target_top_share=target_strong_share,
        target_cost_per_query=target_cost_per_query,
    )
    shares = ", ".join(f"{tier} {share:.1%}" for tier, share in result.shares.items())
    console.print(
        f"cost_weight {result.cost_weight:g} on {result.sample} queries ({source}): {shares}; "
        f"mean ${result.mean_cost_usd:.6f} a query",
        highlight=False,
    )
    if not write:
        return
    if settings.config_file is None:
        raise UsageError("no config file to write to: pass --no-write, or create routeq.toml")
    write_cost_weight(settings.config_file, section, result.cost_weight)
    console.print(f"written to {settings.config_file}", highlight=False)


@app.command()
def flower(
    port: Annotated[int, typer.Option()] = 5555,
    address: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
) -> None:
    """Run Flower (Celery's monitor) on routeq's broker, behind HTTP basic auth.

    Credentials come from ROUTEQ_FLOWER_BASIC_AUTH=user:password (comma-separate several);
    they are handed to Flower in its environment, never on the command line. Flower starts
    through routeq.flower_auth, which puts /metrics and /healthcheck behind the same
    credentials (Flower itself serves them to anyone).
    """

    credentials = os.environ.get("ROUTEQ_FLOWER_BASIC_AUTH", "")
    if not credentials or any(":" not in pair for pair in credentials.split(",")):
        raise UsageError(
            "set ROUTEQ_FLOWER_BASIC_AUTH=user:password: Flower can revoke tasks and shut "
            "workers down, so routeq does not serve it without authentication"
        )
    if "change-me" in credentials:
        raise UsageError(
            "ROUTEQ_FLOWER_BASIC_AUTH still holds the placeholder from .env.example; "
            "choose a real password"
        )
    env = _celery_env(_settings(), FLOWER_BASIC_AUTH=credentials)
    argv = [
        *_celery_command("flower", entry="routeq.flower_auth"),  # Flower with auth on every page
        f"--address={address}",
        f"--port={port}",
        "--purge_offline_workers=300",
    ]
    sys.stdout.flush()
    os.execvpe(sys.executable, argv, env)


@embedded_app.command("stop")
def embedded_stop() -> None:
    """Stop the embedded Postgres and Redis."""
    from routeq.embedded import stop

    stopped = stop(_settings())
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


def main() -> None:
    """The ``routeq`` entry point: every failure routeq understands becomes a few lines on
    stderr and its exit status (``routeq.exitcodes``); a bug keeps its traceback."""
    try:
        app()
    except Exception as error:
        failure = failure_for(error)
        if failure is None:
            raise
        for line in failure.lines:
            text = Text(line)
            if not line.startswith(" "):
                text.stylize("red", 0, line.find(":") + 1)
            err_console.print(text, highlight=False)
        raise SystemExit(failure.code) from None
