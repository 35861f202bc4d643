"""Provider protection under faults (docs/reliability.md, "Protecting providers"): a provider's
rate limit and its 429 storm, a top tier whose endpoint is down with a fallback configured, and
a judge that is down, each with 200 queries in flight on real workers, Redis and Postgres, and
no manual step. The harness and the audit are the fault suite's (``faults``)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from faults import (
    SimProcess,
    audit,
    default_models,
    fault_stack,
    free_port,
    report,
    submit_load,
    wait_all_final,
    wait_for,
)

from routeq import Client
from routeq.config import (
    BudgetConfig,
    ModelEndpoint,
    PrivacyConfig,
    PrivacyTag,
    RoutingConfig,
    RuleConfig,
    SpendConfig,
)

pytestmark = [pytest.mark.integration, pytest.mark.fault]

LOAD = 200
RECOVERY_LIMIT_S = 180


def every_query_to(tier: str) -> RoutingConfig:
    return RoutingConfig(rules=[RuleConfig(name=f"all-{tier}", tier=tier)])


def rows(engine: sa.Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params))


def most_in_any_window(arrivals: list[float], window_s: float) -> int:
    """The most requests that arrived within any ``window_s`` seconds."""
    arrivals = sorted(arrivals)
    most, start = 0, 0
    for end, at in enumerate(arrivals):
        while arrivals[start] <= at - window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


@pytest.mark.parametrize("provider_rps", [6, 4])
def test_a_429_storm_is_held_back_to_the_configured_rate_and_fails_nothing(
    tmp_path: Path, migrated_url: str, ledger: object, provider_rps: int
) -> None:
    """routeq is configured at 300 requests a minute (5 a second) for the cheap model. Its
    provider allows ``provider_rps`` a second and answers more with 429 and ``Retry-After: 1``:
    6 (the configured rate is right: nothing should reach a 429) or 4 (the provider is
    stricter than configured, as when its limit is shared: a storm of 429s, each blocking the
    endpoint for every worker). Without the limiter, 8 worker processes sent it about 30 a
    second, and 54 of 300 queries failed."""
    models = default_models()
    models["sim-small"].update(rate_limit_rps=provider_rps, retry_after_s=1.0)
    with fault_stack(
        tmp_path,
        shared_database_url=migrated_url,
        models=models,
        routing=every_query_to("cheap"),
        tier_overrides={"cheap": {"requests_per_minute": 300, "max_concurrency": 8}},
    ) as stack:
        submit_load(stack, LOAD, f"storm-{provider_rps}")
        recovery = wait_all_final(stack, RECOVERY_LIMIT_S)
        counts = audit(stack, LOAD)
        engine = stack.engine()
        statuses = rows(engine, "SELECT http_status, count(*) FROM provider_requests GROUP BY 1")
        engine.dispose()
    arrivals = stack.sim.arrivals("sim-small")
    assert len(arrivals) >= LOAD
    # The provider never saw more than the configured rate (5 a second, paced: two may go at
    # once), in any window of 10 s or of 1 s.
    assert most_in_any_window(arrivals, 10.0) <= 5 * 10 + 2
    assert most_in_any_window(arrivals, 1.0) <= 5 + 2
    assert counts["failed"] == 0, "a query failed for the rate limit"
    rate_limited = dict(statuses).get(429, 0)
    if provider_rps < 5:
        assert rate_limited > 0, "the provider never refused: no storm was tested"
    report(
        f"rate limit: provider allows {provider_rps}/s (429 with Retry-After 1 s beyond), "
        "routeq configured at 5/s",
        recovery,
        counts,
        provider_429s=rate_limited,
        most_requests_in_1s=most_in_any_window(arrivals, 1.0),
        most_requests_in_10s=most_in_any_window(arrivals, 10.0),
    )


def test_a_top_tier_endpoint_down_is_replaced_by_its_fallback(
    tmp_path: Path, migrated_url: str, ledger: object
) -> None:
    """Every query goes to the top tier, whose own endpoint refuses connections; a fallback
    of similar strength (another model, its own prices) answers instead, and the hop says so.
    Before fallbacks, every query failed: "no tier is left above it"."""
    models = default_models()
    models["sim-large-b"] = {"quality": 0.95, "latency_ms": 120, "output_tokens": 50}
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with fault_stack(
        tmp_path,
        shared_database_url=migrated_url,
        models=models,
        routing=every_query_to("frontier"),
        start_workers=False,
    ) as stack:
        fallback = ModelEndpoint(
            provider="openai",
            base_url=stack.sim.url,
            model="sim-large-b",
            api_key_env="ROUTEQ_FAULT_KEY",
            input_price_per_mtok=Decimal("4.00"),
            output_price_per_mtok=Decimal("12.00"),
            timeout_s=2.0,
        )
        _reconfigure(stack, {"frontier": {"base_url": dead, "fallbacks": [fallback]}})
        stack.start_workers()
        submit_load(stack, LOAD, "fallback")
        recovery = wait_all_final(stack, RECOVERY_LIMIT_S)
        counts = audit(stack, LOAD)
        engine = stack.engine()
        calls = rows(
            engine,
            "SELECT h.model, h.details, q.final_model FROM hops h JOIN queries q "
            "ON q.id = h.query_id WHERE h.kind = 'call' AND h.status = 'done'",
        )
        to_dead = rows(
            engine,
            "SELECT count(*) FROM provider_requests "
            "WHERE model = 'sim-large' AND outcome = 'error'",
        )[0][0]
        engine.dispose()
    assert counts["done"] == LOAD and counts["failed"] == 0
    assert len(calls) == LOAD
    for model, details, final_model in calls:
        assert model == final_model == "sim-large-b"
        assert details["endpoint"] == "sim-large-b"
        (passed_over,) = details["passed_over"]
        assert passed_over["model"] == "sim-large"
    whys = Counter(
        "breaker" if "circuit breaker" in d["passed_over"][0]["why"] else "connection"
        for _, d, _ in calls
    )
    # Only the first few calls tried the dead endpoint; then its breaker kept calls off it
    # (it half-opens every 2 s, and each probe fails).
    assert whys["breaker"] > LOAD * 0.8, whys
    assert to_dead < LOAD * 0.2 * 3, to_dead
    report(
        "top tier's endpoint down (connection refused), a fallback configured",
        recovery,
        counts,
        answered_by_fallback=len(calls),
        requests_to_the_dead_endpoint=to_dead,
        passed_over_by_breaker=whys["breaker"],
    )


def test_a_judge_that_is_down_is_handled_per_tier_counted_and_alerted(
    tmp_path: Path, migrated_url: str, ledger: object
) -> None:
    """The judge's server is down for the first part of the run. Cheap fails open (answers
    accepted unjudged), mid fails closed (escalated unjudged), frontier waits for the judge.
    When the judge is back, the waiting answers are judged; the unjudged share is in the
    metrics and fails ``routeq report --check``."""
    judge_dir = tmp_path / "judge"
    judge_dir.mkdir()
    judge_sim = SimProcess(judge_dir, default_models(), seed=5)
    routing = RoutingConfig(
        rules=[
            RuleConfig(name=tier, tier=tier, metadata={"tier": tier})
            for tier in ("cheap", "mid", "frontier")
        ]
    )
    modes = {
        "cheap": {"judge_fail_mode": "open"},
        "mid": {"judge_fail_mode": "closed"},
        "frontier": {"judge_fail_mode": "wait"},
    }
    tiers = ("cheap", "mid", "frontier")
    try:
        with fault_stack(
            tmp_path,
            shared_database_url=migrated_url,
            routing=routing,
            tier_overrides=modes,
            judge_url=judge_sim.url,
        ) as stack:
            submit_load(stack, LOAD, "judge", metadata=lambda i: {"tier": tiers[i % 3]})
            engine = stack.engine()
            wait_for(
                lambda: (
                    _judge_outcomes(engine).get("accepted_unjudged", 0) >= 20
                    and _judge_outcomes(engine).get("failed_closed", 0) >= 20
                ),
                60,
                "answers handled while the judge is down",
            )
            judge_sim.env = stack.sim.env
            judge_sim.start()  # the judge is back
            recovery = wait_all_final(stack, RECOVERY_LIMIT_S)
            counts = audit(stack, LOAD)
            outcomes = _judge_outcomes(engine)
            unjudged_on = rows(
                engine,
                "SELECT h.tier, h.details->>'judge_outcome' AS outcome, count(*) FROM hops h "
                "WHERE h.kind = 'judge' AND h.details ? 'judge_outcome' GROUP BY 1, 2",
            )
            engine.dispose()
            checked = subprocess.run(
                [sys.executable, "-m", "routeq", "report", "--check"],
                env=stack.env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            metrics = _scrape_metrics(stack)
            received = set(judge_sim.received())
        on_ledger = _request_ids(migrated_url)
    finally:
        judge_sim.kill()
    assert counts["done"] == LOAD and counts["failed"] == 0
    by_tier = {(tier, outcome): n for tier, outcome, n in unjudged_on}
    assert by_tier.get(("cheap", "accepted_unjudged"), 0) >= 20
    assert by_tier.get(("mid", "failed_closed"), 0) >= 20
    # Frontier waited: none of its answers (its own, or mid's escalated ones) went unjudged.
    assert not [key for key in by_tier if key[0] == "frontier"], by_tier
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "unjudged" in checked.stdout + checked.stderr
    unjudged = _counted(
        metrics, "routeq_judge_errors_total", outcome="accepted_unjudged", tier="cheap"
    )
    assert unjudged == by_tier[("cheap", "accepted_unjudged")]
    assert received <= on_ledger, "a judge request is missing from the ledger"
    report(
        "judge down, then back: cheap fails open, mid fails closed, frontier waits",
        recovery,
        counts,
        accepted_unjudged=outcomes.get("accepted_unjudged", 0),
        failed_closed=outcomes.get("failed_closed", 0),
        frontier_unjudged=0,
    )


def test_concurrent_queries_never_overspend_a_budget(
    tmp_path: Path, migrated_url: str, ledger: object
) -> None:
    """200 queries of one user race for a daily budget that affords some of them: each
    call reserves its worst case before it is sent and settles its real cost after, so the
    budget is never exceeded, and each refused query says which budget refused it."""
    limit = Decimal("0.0060")
    spend = SpendConfig(budgets=[BudgetConfig(name="alice-daily", scope="user", limit_usd=limit)])
    with fault_stack(tmp_path, shared_database_url=migrated_url, spend=spend) as stack:
        with Client(stack.settings) as client:
            client.submit_many(
                [
                    {"text": f"Explain budget topic {i} in two sentences.", "user": "alice"}
                    for i in range(LOAD)
                ]
            )
        recovery = wait_all_final(stack, RECOVERY_LIMIT_S)
        counts = audit(stack, LOAD)
        engine = stack.engine()
        (used,) = rows(engine, "SELECT spent, reserved, refused FROM budget_use")
        paid = rows(engine, "SELECT coalesce(sum(cost), 0) FROM provider_requests")[0][0]
        reasons = [
            r for (r,) in rows(engine, "SELECT final_reason FROM queries WHERE status = 'failed'")
        ]
        kept = rows(
            engine,
            "SELECT count(*) FROM queries WHERE status = 'done' "
            "AND final_reason LIKE '%cannot afford%accepted the earlier answer%'",
        )[0][0]
        engine.dispose()
    assert paid <= limit, f"spent ${paid} of a ${limit} budget"
    assert used.spent == paid and used.reserved == 0
    assert counts["done"] > 0 and counts["failed"] > 0, counts
    assert all("budget 'alice-daily' for 'alice' cannot afford this call" in r for r in reasons)
    report(
        f"budget: 200 queries of one user against ${limit} a day",
        recovery,
        counts,
        budget_spent=str(used.spent),
        budget_limit=str(limit),
        refused_calls=used.refused,
        refused_but_kept_an_earlier_answer=kept,
    )


def test_each_privacy_mode_keeps_a_planted_marker_only_where_it_allows(
    tmp_path: Path, migrated_url: str, ledger: object
) -> None:
    """200 queries in flight, a third in each privacy mode (by a metadata tag), each prompt
    carrying a marker. The ledger holds the markers of ``full`` queries only; a ``redact``
    query's marker was replaced before it was stored; a ``none`` query's texts were erased when
    it closed and its answer after the 2 s hold. No marker is in Redis or any log."""
    modes = ("full", "redact", "none")
    privacy = PrivacyConfig(
        tags=[PrivacyTag(tag="privacy", value=mode, mode=mode) for mode in modes],  # type: ignore[arg-type]
        answer_hold_s=2.0,
    )
    with fault_stack(tmp_path, shared_database_url=migrated_url, privacy=privacy) as stack:
        with Client(stack.settings) as client:
            client.submit_many(
                [
                    {
                        "text": f"Send the minutes to plantedmarker-{modes[i % 3]}-{i}@example.com "
                        f"and explain topic {i} in two sentences.",
                        "metadata": {"privacy": modes[i % 3]},
                    }
                    for i in range(LOAD)
                ]
            )
        recovery = wait_all_final(stack, RECOVERY_LIMIT_S)
        engine = stack.engine()
        wait_for(
            lambda: (
                rows(
                    engine,
                    "SELECT count(*) FROM queries "
                    "WHERE privacy = 'none' AND texts_erased_at IS NULL",
                )[0][0]
                == 0
            ),
            30,
            "the held answers erased",
        )
        counts = audit(stack, LOAD)
        found = {mode: _rows_holding(engine, f"plantedmarker-{mode}-") for mode in modes}
        hashed = rows(
            engine,
            "SELECT count(*) FROM queries WHERE privacy = 'none' AND text = '' "
            "AND length(text_sha256) = 64 AND input_tokens > 0 AND total_cost > 0",
        )[0][0]
        engine.dispose()
        from test_faults import _redis_contents

        elsewhere = {"redis": _redis_contents(stack.redis.client())}
        for log in stack.logs:
            elsewhere[log.name] = log.read_text(errors="replace")
    assert counts["done"] == LOAD
    assert found["full"] == {"queries": LOAD // 3 + (LOAD % 3 > 0)}, found["full"]
    assert found["redact"] == {} and found["none"] == {}, found
    assert hashed == LOAD // 3
    leaks = [where for where, text in elsewhere.items() if "plantedmarker" in text]
    assert not leaks, f"a planted marker was found in: {leaks}"
    report(
        "privacy: full, redact and none (a third each), a marker in every prompt",
        recovery,
        counts,
        marker_rows_full=sum(found["full"].values()),
        marker_rows_redact=0,
        marker_rows_none=0,
        none_queries_hashed=hashed,
    )


def _rows_holding(engine: sa.Engine, needle: str) -> dict[str, int]:
    """How many rows of each ledger table mention ``needle`` anywhere (the row as text)."""
    found = {}
    for table in ("queries", "hops", "provider_requests", "batch_documents", "feedback"):
        count = rows(
            engine, f"SELECT count(*) FROM {table} t WHERE t::text LIKE :n", n=f"%{needle}%"
        )[0][0]
        if count:
            found[table] = int(count)
    return found


def _judge_outcomes(engine: sa.Engine) -> dict[str, int]:
    found = rows(
        engine,
        "SELECT details->>'judge_outcome', count(*) FROM hops WHERE kind = 'judge' "
        "AND details ? 'judge_outcome' GROUP BY 1",
    )
    return {outcome: int(n) for outcome, n in found}


def _request_ids(database_url: str) -> set[str]:
    engine = sa.create_engine(database_url)
    found = {str(row[0]) for row in rows(engine, "SELECT id FROM provider_requests")}
    engine.dispose()
    return found


def _scrape_metrics(stack: Any) -> str:
    """One scrape of the exporter's collector, as ``routeq metrics`` serves it."""
    from prometheus_client import CollectorRegistry, generate_latest

    from routeq.broker import broker_client
    from routeq.ledger import make_engine
    from routeq.metrics import LedgerCollector
    from routeq.queue.app import queue_names

    registry = CollectorRegistry()
    engine = make_engine(stack.database_url, pool_size=1)
    registry.register(
        LedgerCollector(
            engine, broker_client(stack.redis.url), queue_names(stack.settings), stack.settings
        )
    )
    try:
        return generate_latest(registry).decode()
    finally:
        engine.dispose()


def _counted(metrics: str, name: str, **labels: str) -> float:
    """The value of the series ``name`` with ``labels`` (0 when absent)."""
    for line in metrics.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _reconfigure(stack: Any, tiers: dict[str, dict[str, Any]]) -> None:
    """Change tiers in the stack's config file (and the client's settings) before the workers
    start."""
    from routeq.config import load_settings, write_config

    updated = [tier.model_copy(update=tiers.get(tier.name, {})) for tier in stack.settings.tiers]
    settings = type(stack.settings).model_validate(
        {**stack.settings.model_dump(), "tiers": [t.model_dump() for t in updated]}
    )
    config = Path(stack.env["ROUTEQ_CONFIG"])
    write_config(settings, config)
    stack.settings = load_settings(
        config, database_url=stack.database_url, broker_url=stack.redis.url
    )
