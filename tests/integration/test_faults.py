"""The fault-injection suite: routeq heals by itself, loses nothing and records nothing twice.

Each case puts at least 200 queries in flight on real worker groups, real Redis and real
Postgres (servers the case owns), injects a fault, and then waits, with no manual step, for
every query to reach a final state. Then the audit of ``faults.audit``: every journey is
consistent, no call is recorded twice, every request the simulated server received is on the
ledger, nothing is left pending and costs add up. Each case appends its row (including the time
to recover) to the report that docs/reliability.md tabulates:

    ROUTEQ_FAULT_REPORT=fault-report.jsonl .venv/bin/pytest -m fault -p no:randomly
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from faults import (
    PLANTED_KEY,
    PostgresCluster,
    audit,
    default_models,
    fault_stack,
    live_queries,
    random_kills,
    report,
    submit_load,
    wait_all_final,
    wait_for,
)
from ledger_helpers import insert_deep_metadata_query

from routeq import Client
from routeq.errors import InvalidQueryError

pytestmark = [pytest.mark.integration, pytest.mark.fault]

LOAD = 200
RECOVERY_LIMIT_S = 120  # every case must be final this long after its fault ended


def in_flight(stack: object, at_least: int = 50) -> None:
    """Wait until calls are under way and many queries are still live."""
    engine = stack.engine()  # type: ignore[attr-defined]
    try:
        wait_for(lambda: live_queries(engine) >= at_least, 30, "load in flight")
    finally:
        engine.dispose()


@pytest.fixture
def own_postgres() -> None:
    why = PostgresCluster.available()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"cannot run a private Postgres: {why}")
        pytest.skip(why)


def test_baseline_without_a_fault(tmp_path: Path, migrated_url: str, ledger: object) -> None:
    """The same load with no fault: the time the other cases' recovery is compared with."""
    with fault_stack(tmp_path, shared_database_url=migrated_url) as stack:
        submit_load(stack, LOAD, "baseline")
        in_flight(stack)
        recovery = wait_all_final(stack, RECOVERY_LIMIT_S)
        counts = audit(stack, LOAD)
    report("no fault (baseline for the times below)", recovery, counts)


def test_workers_killed_at_random_repeatedly(
    tmp_path: Path, migrated_url: str, ledger: object
) -> None:
    with fault_stack(tmp_path, shared_database_url=migrated_url) as stack:
        submit_load(stack, LOAD, "kill")
        in_flight(stack)
        killed = random_kills(stack, rounds=8, every_s=1.0, rng=random.Random(3))
        recovery = wait_all_final(stack, RECOVERY_LIMIT_S)
        counts = audit(stack, LOAD)
    assert killed >= 6
    report("worker processes SIGKILLed (8 times, parents and children)", recovery, counts)


@pytest.mark.parametrize("how", ["restart", "flush"])
def test_redis_lost_mid_run(tmp_path: Path, migrated_url: str, ledger: object, how: str) -> None:
    with fault_stack(tmp_path, shared_database_url=migrated_url) as stack:
        submit_load(stack, LOAD, f"redis-{how}")
        in_flight(stack)
        if how == "restart":
            stack.redis.restart(down_s=1.0)  # no persistence: every message is gone
        else:
            stack.redis.client().flushall()
        recovery = wait_all_final(stack, RECOVERY_LIMIT_S)
        counts = audit(stack, LOAD)
    label = "Redis restarted without persistence" if how == "restart" else "Redis flushed"
    report(label, recovery, counts)


@pytest.mark.usefixtures("own_postgres")
@pytest.mark.parametrize("down_s", [0.0, 30.0])
def test_postgres_restarted_or_stopped(tmp_path: Path, down_s: float) -> None:
    with fault_stack(tmp_path, own_postgres=True) as stack:
        assert stack.postgres is not None
        submit_load(stack, LOAD, f"pg-{down_s:g}")
        in_flight(stack)
        if down_s:
            stack.postgres.stop("immediate")
            time.sleep(down_s)
            stack.postgres.start()
        else:
            stack.postgres.restart()
        recovery = wait_all_final(stack, RECOVERY_LIMIT_S)
        counts = audit(stack, LOAD)
    label = "Postgres restarted (crash)" if not down_s else f"Postgres stopped for {down_s:g} s"
    report(label, recovery, counts)


def test_model_server_killed_and_restarted(
    tmp_path: Path, migrated_url: str, ledger: object
) -> None:
    with fault_stack(tmp_path, shared_database_url=migrated_url) as stack:
        submit_load(stack, LOAD, "sim")
        in_flight(stack)
        stack.sim.kill()
        time.sleep(3.0)  # longer than one delivery's retries: some calls fail and escalate
        stack.sim.start()
        recovery = wait_all_final(stack, RECOVERY_LIMIT_S)
        counts = audit(stack, LOAD)
    report("model server killed, restarted after 3 s", recovery, counts)


def test_poison_queries_end_visibly_and_do_not_stop_the_rest(
    tmp_path: Path, migrated_url: str, ledger: object
) -> None:
    models = default_models()
    models["sim-small"].update(echo_special=True, omit_usage=True)
    with fault_stack(tmp_path, shared_database_url=migrated_url, models=models) as stack:
        deep: dict[str, object] = {}
        node = deep
        for _ in range(960):
            node["x"] = {}
            node = node["x"]  # type: ignore[assignment]
        with Client(stack.settings) as client:
            # Given metadata too deep to handle: refused at submission, nothing written
            with pytest.raises(InvalidQueryError, match="metadata"):
                client.submit("hello", metadata=deep)
            # and text with special tokens: accepted, counted as text
            handles = client.submit_many(
                [
                    {
                        "text": f"Question {i} <|endoftext|> with <|im_start|> tokens?",
                        "idempotency_key": f"poison-{i}",
                    }
                    for i in range(LOAD)
                ]
            )
        # And a poison row an older client could have written: metadata nested 960 deep
        poison = insert_deep_metadata_query(stack.database_url, depth=960)
        from routeq.queue.app import create_app

        app = create_app(stack.settings, stack.redis.url)
        app.send_task("routeq.route", args=[str(poison), 1], queue="route", routing_key="route")
        recovery = wait_all_final(stack, RECOVERY_LIMIT_S)
        with Client(stack.settings) as client:
            results = [client.status(handle.query_id) for handle in handles]
            stuck = client.status(poison)  # readable, although its metadata is not
        _defuse(stack.database_url, poison)  # so that the audit below can read every row
        counts = audit(stack, LOAD + 1, exempt=frozenset([poison]))
    assert all(result.ok for result in results), [r.reason for r in results if not r.ok][:3]
    assert stuck.status == "failed" and stuck.reason, stuck
    report(
        "poison queries (960-deep metadata, special tokens in text and answers)", recovery, counts
    )


def _defuse(database_url: str, query_id: object) -> None:
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE queries SET metadata = '{}' WHERE id = :id"), {"id": query_id})
    engine.dispose()


PRODUCER = """
import sys, time
from routeq import Client
from routeq.config import load_settings
count = int(sys.argv[1])
with Client(load_settings()) as client:
    for start in range(0, count, 10):
        client.submit_many([{"text": f"Producer question {i}?", "idempotency_key": f"p-{i}"}
                            for i in range(start, start + 10)])
        print(start + 10, flush=True)
        time.sleep(0.02)
"""


def test_producer_killed_mid_submission_and_rerun(
    tmp_path: Path, migrated_url: str, ledger: object
) -> None:
    total = 300
    with fault_stack(tmp_path, shared_database_url=migrated_url) as stack:
        script = tmp_path / "producer.py"
        script.write_text(PRODUCER)
        producer = subprocess.Popen(
            [sys.executable, str(script), str(total)],
            env=stack.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert producer.stdout is not None
        for line in producer.stdout:
            if int(line) >= 120:
                break
        producer.send_signal(signal.SIGKILL)
        producer.wait()
        rerun = subprocess.run(
            [sys.executable, str(script), str(total)],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rerun.returncode == 0, rerun.stderr
        recovery = wait_all_final(stack, RECOVERY_LIMIT_S)
        counts = audit(stack, total)  # exactly 300 queries: the rerun paid for none twice
    report("producer SIGKILLed mid-submission, rerun (idempotency keys)", recovery, counts)


def test_summarize_interrupted_with_slow_calls_then_rerun_finishes_by_itself(
    tmp_path: Path, migrated_url: str, ledger: object
) -> None:
    """``routeq summarize`` on its own local workers, Ctrl-C while calls longer than the
    shutdown grace are in flight, then the same command again: it finishes the batch."""
    models = default_models(latency_ms=40)
    models["sim-small"].update(quality=0.6)  # a good share escalates to the slow mid tier
    models["sim-medium"].update(latency_ms=5000)  # far longer than the 1 s shutdown grace
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(LOAD):
        corpus.joinpath(f"note-{i:03}.txt").write_text(
            f"Note {i}. The committee met on Tuesday to review the budget of project {i}. "
            "It agreed to fund the second phase and asked for a written report by March. "
            "Members noted that costs had risen and that the schedule had slipped twice.\n"
        )
    with fault_stack(
        tmp_path,
        shared_database_url=migrated_url,
        models=models,
        tier_overrides={"mid": {"timeout_s": 8.0, "max_concurrency": 8}},
        start_workers=False,
    ) as stack:
        env = {k: v for k, v in stack.env.items() if k != "ROUTEQ_BROKER_URL"}  # embedded Redis
        command = [
            sys.executable,
            "-m",
            "routeq",
            "summarize",
            str(corpus),
            "--out",
            str(tmp_path / "out.jsonl"),
            "--workers",
            "8",
        ]
        first = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path
        )
        engine = stack.engine()
        wait_for(lambda: _running_calls(engine, "mid") >= 4, 120, "slow calls in flight")
        interrupted_at = time.monotonic()
        first.send_signal(signal.SIGINT)
        output, _ = first.communicate(timeout=60)
        assert first.returncode == 130, output
        running_after_stop = _running_calls(engine)
        assert b"hops they were running are queued again" in output, output[-2000:]
        rerun = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
        )
        recovery = time.monotonic() - interrupted_at
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert live_queries(engine) == 0
        engine.dispose()
        counts = audit(stack, LOAD)
        lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sum(line.get("status") == "done" for line in lines) == LOAD
    assert running_after_stop == 0, "hops of the killed workers were not handed back"
    report(
        "routeq summarize: Ctrl-C with 5 s calls in flight (grace 1 s), same command again",
        recovery,
        counts,
    )


def _running_calls(engine: sa.Engine, tier: str | None = None) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM hops WHERE kind = 'call' AND status = 'running' "
                    "AND (CAST(:tier AS text) IS NULL OR tier = :tier)"
                ),
                {"tier": tier},
            ).scalar_one()
        )


def test_planted_key_is_found_nowhere(tmp_path: Path, own_postgres: None) -> None:
    """A planted API key, echoed back by the provider in its errors, appears in no database
    dump, Redis key, worker log, Flower answer, metric or CLI output."""
    models = default_models()
    models["sim-small"].update(fault_500=0.3, echo_auth=True)
    with fault_stack(tmp_path, own_postgres=True, models=models) as stack:
        handles = submit_load(stack, LOAD, "secret")
        in_flight(stack)
        wait_all_final(stack, RECOVERY_LIMIT_S)
        assert stack.postgres is not None
        places: dict[str, str] = {"database dump": stack.postgres.dump()}
        places["redis"] = _redis_contents(stack.redis.client())
        for log in stack.logs:
            places[f"log {log.name}"] = log.read_text(errors="replace")
        places["cli"] = _cli_outputs(stack, [str(h.query_id) for h in handles[:20]])
        places.update(_monitoring_outputs(stack, tmp_path))
        errors_seen = "HTTP 500" in places["database dump"]
    assert errors_seen, "the provider never failed: the scan would prove nothing"
    leaks = [where for where, text in places.items() if PLANTED_KEY in text]
    assert not leaks, f"the planted key was found in: {leaks}"


def _redis_contents(client: object) -> str:
    import redis

    assert isinstance(client, redis.Redis)
    parts = []
    for key in client.scan_iter(count=500):
        kind = client.type(key)
        if kind == b"string":
            parts.append(repr(client.get(key)))
        elif kind == b"list":
            parts.append(repr(client.lrange(key, 0, -1)))
        elif kind == b"hash":
            parts.append(repr(client.hgetall(key)))
        elif kind == b"set":
            parts.append(repr(client.smembers(key)))
        elif kind == b"zset":
            parts.append(repr(client.zrange(key, 0, -1)))
        parts.append(repr(key))
    return "\n".join(parts)


def _cli_outputs(stack: object, query_ids: list[str]) -> str:
    outputs = []
    for args in (["check"], *(["status", qid] for qid in query_ids)):
        result = subprocess.run(
            [sys.executable, "-m", "routeq", *args],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=60,
        )  # type: ignore[attr-defined]
        outputs.append(result.stdout + result.stderr)
    return "\n".join(outputs)


def _monitoring_outputs(stack: object, tmp_path: Path) -> dict[str, str]:
    import httpx
    from faults import free_port

    flower_port, metrics_port = free_port(), free_port()
    env = {**stack.env, "ROUTEQ_FLOWER_BASIC_AUTH": "ops:s3cret-pass"}  # type: ignore[attr-defined]
    flower = stack.spawn("flower", "flower", "--port", str(flower_port), env=env)  # type: ignore[attr-defined]
    metrics = stack.spawn("metrics", "metrics", "--port", str(metrics_port))  # type: ignore[attr-defined]
    found: dict[str, str] = {}
    auth = ("ops", "s3cret-pass")
    try:
        wait_for(
            lambda: _answers(f"http://127.0.0.1:{flower_port}/healthcheck", auth), 60, "flower up"
        )
        wait_for(
            lambda: _answers(f"http://127.0.0.1:{metrics_port}/metrics", None), 60, "metrics up"
        )
        for path in ("/api/tasks", "/api/workers", "/metrics", "/api/queues/length"):
            found[f"flower {path}"] = httpx.get(
                f"http://127.0.0.1:{flower_port}{path}", auth=auth, timeout=30
            ).text
        found["metrics"] = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).text
    finally:
        for process in (flower, metrics):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)
    return found


def _answers(url: str, auth: tuple[str, str] | None) -> bool:
    import httpx

    try:
        return httpx.get(url, auth=auth, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_key_with_a_trailing_newline_is_refused_by_name_and_never_shown(
    tmp_path: Path, migrated_url: str, broker_url: str
) -> None:
    """The classic ``echo key > file``: every command refuses to start, names the variable,
    and prints no part of the key."""
    from faults import fault_settings

    from routeq.config import write_config

    settings = fault_settings("http://127.0.0.1:9/v1", workdir=tmp_path)
    config = write_config(settings, tmp_path / "routeq.toml")
    env = {
        **os.environ,
        "ROUTEQ_CONFIG": str(config),
        "ROUTEQ_DATABASE_URL": migrated_url,
        "ROUTEQ_BROKER_URL": broker_url,
        "ROUTEQ_FAULT_KEY": PLANTED_KEY + "\n",
    }
    for args in (["worker", "--tier", "cheap"], ["check"], ["submit", "hello"], ["beat"]):
        result = subprocess.run(
            [sys.executable, "-m", "routeq", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        shown = result.stdout + result.stderr
        assert result.returncode != 0, args
        assert "ROUTEQ_FAULT_KEY" in result.stderr and "newline" in result.stderr, shown
        assert PLANTED_KEY[4:12] not in shown, f"{args}: part of the key was printed"
