"""Training data from the ledger: real queries through the in-process pipeline, exported as an
outcome file (``routeq export-outcomes``), checked line by line against what the ledger holds;
exploration through the real route step; and ``routeq eval`` on such a file."""

from __future__ import annotations

import itertools
import json
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from audit import ledger_rows
from stack import bad_tiers_sim, sim_config
from test_inprocess_pipeline import pipeline
from test_pipeline import workload

from routeq import cli
from routeq.config import JudgeConfig
from routeq.evaluation.outcomes import observed_pairs, read_outcomes
from routeq.hooks import CallContext, CallGate, Hook, MoveTo
from routeq.ledger import Ledger
from routeq.ledger.repository import JudgedAnswer
from routeq.ledger_outcomes import answer_score, write_outcomes
from routeq.policies.router import exploration_tier
from routeq.records import NewQuery, QueryRole
from routeq.sim import SimModel
from routeq.summary_spec import SummarySpec, SummaryTask
from routeq.tokens import count_tokens

pytestmark = pytest.mark.integration

TIERS = ("cheap", "mid", "frontier")
MODELS = {"cheap": "sim-small", "mid": "sim-medium", "frontier": "sim-large"}
CHAT = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Name a prime number."},
    {"role": "assistant", "content": "7"},
    {"role": "user", "content": "What is the capital of Portugal?"},
]


# -- what the ledger holds, read independently of the export -------------------------------------


def expected_lines(database_url: str, key: str = "tier") -> list[dict[str, Any]]:
    """The outcome lines the ledger's raw rows call for, oldest query first: every closed
    answer query, with each call that answered and whose next hop is a judge hop that gave a
    verdict of its own."""
    queries, hops, _ = ledger_rows(database_url)
    lines = []
    for query in sorted(queries.values(), key=lambda q: (q.created_at, q.id)):
        if query.role != "answer" or query.status not in ("done", "failed"):
            continue
        outcomes: dict[str, Any] = {}
        journey = hops[query.id]
        for call, verdict in itertools.pairwise(journey):
            labelled = (
                call.kind == "call"
                and call.status == "done"
                and "gate" not in call.details
                and call.output is not None
                and verdict.kind == "judge"
                and verdict.status == "done"
                and verdict.passed is not None
                and verdict.details.get("source") != "judge-error"
            )
            if labelled:
                if verdict.judge_score is not None:
                    score = float(verdict.judge_score) / 10
                else:
                    score = 1.0 if verdict.passed else 0.0
                name = call.tier if key == "tier" else call.model
                outcomes[name] = {"score": score, "response": call.output}
        if outcomes:
            line: dict[str, Any] = {
                "id": str(query.id),
                "benchmark": "ledger",
                "domain": (query.metadata or {}).get("domain", ""),
                "prompt": query.text,
                "outcomes": outcomes,
            }
            line["routed"] = {
                "tier": journey[0].tier,
                "policy": journey[0].policy,
                "version": journey[0].policy_version,
            }
            if query.messages:
                line["messages"] = query.messages
            route = journey[0].details
            if route.get("explore"):
                line["explore"] = {
                    "tier": journey[0].tier,
                    "policy_choice": route["policy_choice"],
                    "share": route["explore_share"],
                }
            lines.append(line)
    return lines


def exported(ledger: Ledger, path: Path, key: str = "tier", **options: Any) -> list[Any]:
    counts = write_outcomes(ledger.judged_queries(**options), path, key)  # type: ignore[arg-type]
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert counts.queries == len(lines)
    assert counts.outcomes == sum(len(line["outcomes"]) for line in lines)
    return lines


def tiers_of(line: dict[str, Any]) -> set[str]:
    return set(line["outcomes"])


def judge_hops(database_url: str) -> dict[str, list[Any]]:
    """The judge hops of each query, by query id."""
    _, hops, _ = ledger_rows(database_url)
    return {str(qid): [h for h in journey if h.kind == "judge"] for qid, journey in hops.items()}


def other_roles() -> list[NewQuery]:
    """Queries that are not a user's answer query: none of them may be exported."""
    summary = "The harbour opened in 1901. " * 20
    task = SummaryTask(role="document", spec=SummarySpec()).model_dump(mode="json")
    return [
        NewQuery("hello again", 3, role=QueryRole.SHADOW),
        NewQuery("hello once more", 3, role=QueryRole.RERUN),
        NewQuery(summary, count_tokens(summary), task=task, role=QueryRole.DOCUMENT),
    ]


# -- the export against the ledger ---------------------------------------------------------------


def test_the_export_is_exactly_what_the_ledger_judged(
    ledger: Ledger, migrated_url: str, tmp_path: Path
) -> None:
    # Given 60 queries on a ladder whose cheap and mid tiers often answer badly (so many
    # escalate), a chat query, one with a domain, and queries of other roles
    chat = NewQuery(CHAT[-1]["content"], 20, messages=CHAT)
    geo = NewQuery("What is the capital of France?", 8, metadata={"domain": "geo", "n": 1})
    with pipeline(ledger, bad_tiers_sim(latency_ms=0)) as (runner, _):
        ids = runner.submit([*workload(60), chat, geo, *other_roles()])
        report = runner.run()
    assert report.errors == []

    # When the ledger is exported
    lines = exported(ledger, tmp_path / "outcomes.jsonl")

    # Then the file holds exactly the judged answers of the answer queries, oldest first
    assert lines == expected_lines(migrated_url)
    answer_ids = {str(i) for i in ids[:62]}
    assert {line["id"] for line in lines} <= answer_ids
    assert not {str(i) for i in ids[62:]} & {line["id"] for line in lines}  # other roles
    # escalated queries have an outcome on every tier they were judged on; a query routed
    # straight to the top tier has only that one
    several = [line for line in lines if len(line["outcomes"]) > 1]
    assert len(several) >= 10
    for line in several:  # each tier below the last was failed by its judge (pass is 6/10)
        *below, _top = sorted(line["outcomes"], key=TIERS.index)
        assert all(line["outcomes"][tier]["score"] < 0.6 for tier in below), line["outcomes"]
    code = [line for line in lines if line["prompt"].startswith("Write Python code")]
    assert code and all(tiers_of(line) == {"frontier"} for line in code)
    # an LLM judge's score over ten; heuristic failures (before the judge is asked) are 0.0
    scores = {o["score"] for line in lines for o in line["outcomes"].values()}
    assert scores <= {k / 10 for k in range(11)} and 0.0 in scores
    # the chat query's prompt is the text the route step shows a policy; its turns come along
    by_id = {line["id"]: line for line in lines}
    chat_line, geo_line = by_id[str(ids[60])], by_id[str(ids[61])]
    assert chat_line["prompt"] == "What is the capital of Portugal?"
    assert chat_line["messages"] == CHAT and "messages" not in geo_line
    assert geo_line["domain"] == "geo" and chat_line["domain"] == ""
    # a judge that could not grade gives no label: the hop is there, its tier's outcome not
    judged = judge_hops(migrated_url)
    for line in lines:
        verdicts = judged[line["id"]]
        graded = {h.tier for h in verdicts if h.details.get("source") != "judge-error"}
        assert tiers_of(line) == graded
    # and the file reads back as an outcome file, with the two-outcome pairs available
    examples = read_outcomes(tmp_path / "outcomes.jsonl")
    assert [e.id for e in examples] == [line["id"] for line in lines]
    pairs = observed_pairs(examples, "cheap", "mid")
    assert {e.id for e in pairs} == {
        line["id"] for line in lines if {"cheap", "mid"} <= tiers_of(line)
    }
    assert examples[[e.id for e in examples].index(chat_line["id"])].extra["messages"] == CHAT


def test_heuristic_verdicts_are_one_or_zero(
    ledger: Ledger, migrated_url: str, tmp_path: Path
) -> None:
    # Given no judge model: the heuristic checks alone judge, and a weak cheap tier fails them
    # often ([ESCALATE], refusals, cut answers)
    sim = sim_config(**{"sim-small": SimModel("sim-small", quality=0.2, latency_ms=0)})
    with pipeline(ledger, sim, judge=JudgeConfig()) as (runner, _):
        runner.submit([f"hello {i}" for i in range(30)])  # chit-chat: routed to cheap
        runner.run()

    lines = exported(ledger, tmp_path / "h.jsonl")

    assert lines == expected_lines(migrated_url) and len(lines) == 30
    assert {o["score"] for line in lines for o in line["outcomes"].values()} == {0.0, 1.0}
    for line in lines:
        cheap = line["outcomes"]["cheap"]["score"]
        # a failed cheap answer escalated, so the next tier has its own label
        assert (cheap == 0.0) == ("mid" in line["outcomes"]), line["outcomes"]


class MoveCheapToMid(Hook):
    def before_call(self, call: CallContext) -> CallGate:
        if call.tier == "cheap":
            return MoveTo("mid", "cheap is reserved")
        return super().before_call(call)


BROKEN_JUDGE = SimModel("sim-judge", 1.0, judge=True, latency_ms=0, fault_malformed=1.0)
FAILING_CHEAP = SimModel("sim-small", 1.0, latency_ms=0, fault_500=1.0)


NOT_JUDGED = {"tier_overrides": {"cheap": {"judge": False}}}


@pytest.mark.parametrize(
    ("sim_models", "options", "journey", "tiers"),
    [
        # the judge replies garbage every time: fail open accepts unjudged, no label at all
        pytest.param(
            {"sim-judge": BROKEN_JUDGE},
            {},
            ["route", "call cheap", "judge cheap judge-error"],
            set(),
            id="unjudged",
        ),
        # cheap fails every call: no label for cheap, mid answers and is judged
        pytest.param(
            {"sim-small": FAILING_CHEAP},
            {},
            ["route", "call cheap failed", "call mid", "judge mid llm"],
            {"mid"},
            id="failed-call",
        ),
        # a hook moves the cheap call to mid: the gated hop is no call, mid is labelled
        pytest.param(
            {},
            {"pipeline": {"hooks": [MoveCheapToMid()]}},
            ["route", "call cheap gate", "call mid", "judge mid llm"],
            {"mid"},
            id="gated",
        ),
        # judging is off for cheap: its answer is accepted unjudged, no label
        pytest.param({}, NOT_JUDGED, ["route", "call cheap"], set(), id="not-judged"),
    ],
)
def test_answers_without_a_verdict_of_their_own_give_no_label(
    ledger: Ledger,
    migrated_url: str,
    tmp_path: Path,
    sim_models: dict[str, SimModel],
    options: dict[str, Any],
    journey: list[str],
    tiers: set[str],
) -> None:
    good = {name: SimModel(name, 1.0, latency_ms=0) for name in ("sim-small", "sim-medium")}
    with pipeline(ledger, sim_config(**{**good, **sim_models}), **options) as (runner, _):
        [query_id] = runner.submit(["hello"])  # chit-chat: routed to cheap
        runner.run()

    lines = exported(ledger, tmp_path / "x.jsonl")

    _, hops, _ = ledger_rows(migrated_url)
    assert [described(hop) for hop in hops[query_id]] == journey
    assert lines == expected_lines(migrated_url)
    assert [tiers_of(line) for line in lines] == ([tiers] if tiers else [])
    if tiers:
        assert lines[0]["id"] == str(query_id)


def described(hop: Any) -> str:
    """A hop as "kind [tier] [failed|gate|judge source]"."""
    words = [hop.kind] + ([hop.tier] if hop.kind != "route" else [])
    if hop.status == "failed":
        words.append("failed")
    if "gate" in hop.details:
        words.append("gate")
    if hop.kind == "judge":
        words.append(hop.details["source"])
    return " ".join(words)


def test_model_keys_since_and_limit(ledger: Ledger, migrated_url: str, tmp_path: Path) -> None:
    with pipeline(ledger, bad_tiers_sim(latency_ms=0)) as (runner, _):
        ids = runner.submit(workload(20))
        runner.run()
    everything = expected_lines(migrated_url)

    by_model = exported(ledger, tmp_path / "m.jsonl", key="model")
    assert by_model == expected_lines(migrated_url, key="model")
    assert {m for line in by_model for m in line["outcomes"]} <= set(MODELS.values())
    assert exported(ledger, tmp_path / "l.jsonl", limit=5) == everything[:5]
    # Queries created before --since are left out (ten of them, moved back a day)
    old = [str(i) for i in ids[:10]]
    backdate(migrated_url, old)
    since = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    recent = exported(ledger, tmp_path / "s.jsonl", since=since)
    assert recent == [line for line in expected_lines(migrated_url) if line["id"] not in old]
    assert exported(ledger, tmp_path / "f.jsonl", since=datetime(2999, 1, 1, tzinfo=UTC)) == []


def backdate(database_url: str, query_ids: list[str]) -> None:
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE queries SET created_at = created_at - interval '1 day' "
                "WHERE id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": query_ids},
        )
    engine.dispose()


# -- the commands -------------------------------------------------------------------------------


@pytest.fixture
def database_env(migrated_url: str, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI pointed at the test ledger (no config file: the default ladder's names)."""
    monkeypatch.setenv("ROUTEQ_DATABASE_URL", migrated_url)
    monkeypatch.setenv("ROUTEQ_BROKER_URL", "redis://127.0.0.1:6379/10")  # never connected to
    return clean_env


def run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    """``routeq ARGS`` through ``main``, as the installed script runs it."""
    monkeypatch.setattr(sys, "argv", ["routeq", *args])
    try:
        cli.main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def judged_ledger(ledger: Ledger) -> Iterator[list[uuid.UUID]]:
    with pipeline(ledger, bad_tiers_sim(latency_ms=0)) as (runner, _):
        ids = runner.submit(workload(40))
        runner.run()
    yield ids


def test_export_outcomes_writes_the_file_and_prints_counts_only(
    judged_ledger: list[uuid.UUID],
    migrated_url: str,
    database_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = database_env / "mine.jsonl"
    code, stdout, stderr = run(
        capsys, monkeypatch, "export-outcomes", "--out", str(out), "--tier-as", "model"
    )

    assert (code, stderr) == (0, "")
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines == expected_lines(migrated_url, key="model") and len(lines) == 40
    outcomes = sum(len(line["outcomes"]) for line in lines)
    assert f"{out}: 40 queries, {outcomes} outcomes (" in stdout
    # counts only: no prompt and no answer reaches the console
    for line in lines:
        assert line["prompt"] not in stdout
        assert all(o["response"][:40] not in stdout for o in line["outcomes"].values())

    code, stdout, _ = run(capsys, monkeypatch, "export-outcomes", "-o", str(out), "--limit", "3")
    assert code == 0 and f"{out}: 3 queries" in stdout
    assert len(out.read_text().splitlines()) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "error: --since 'yesterday' is not an ISO 8601 date or time"),
        (["--since", "2024-13-01"], "error: --since '2024-13-01' is not an ISO 8601 date"),
        (["--tier-as", "name"], "error: --tier-as must be one of tier, model, not 'name'"),
    ],
)
def test_export_outcomes_refuses_bad_options_before_touching_anything(
    database_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    out = database_env / "never.jsonl"
    code, stdout, stderr = run(capsys, monkeypatch, "export-outcomes", "--out", str(out), *args)

    assert code == 2, (stdout, stderr)
    assert stderr.startswith(message), stderr
    assert "Traceback" not in stderr and not out.exists()


def test_an_export_with_nothing_to_export_writes_an_empty_file(
    ledger: Ledger,
    database_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = database_env / "empty.jsonl"
    code, stdout, _ = run(capsys, monkeypatch, "export-outcomes", "--out", str(out))
    assert code == 0 and out.read_text() == ""
    assert "no closed user query with a judged answer matched" in stdout


def test_eval_on_an_export_measures_only_the_pairs_observed_together(
    judged_ledger: list[uuid.UUID],
    database_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = database_env / "mine.jsonl"
    assert run(capsys, monkeypatch, "export-outcomes", "--out", str(out))[0] == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    both = [line for line in lines if {"cheap", "mid"} <= tiers_of(line)]
    assert 2 <= len(both) < len(lines)

    code, stdout, stderr = run(
        capsys,
        monkeypatch,
        "eval",
        "--dataset",
        str(out),
        "--weak",
        "cheap",
        "--strong",
        "mid",
        "--folds",
        "2",
    )

    assert code == 0, stderr
    dropped = len(lines) - len(both)
    assert (
        f"{dropped} of {len(lines)} examples dropped: they lack an outcome of cheap or of mid"
        in stdout
    )
    assert f"{len(both)} prompts, cheap vs mid" in stdout
    # How the ledger's policy routed those queries (a calibration's realised share).
    routed = [line["routed"] for line in both]
    label = f"{routed[0]['policy']} {routed[0]['version']}"
    assert all(f"{r['policy']} {r['version']}" == label for r in routed)
    cheap = sum(r["tier"] == "cheap" for r in routed) / len(routed)
    assert f"routed on the ledger by {label}: cheap {cheap:.1%}" in stdout
    # without --weak and --strong, a file where no two tiers are on every line names them
    code, _, stderr = run(capsys, monkeypatch, "eval", "--dataset", str(out))
    assert code == 2 and "with --weak and --strong" in stderr


# -- exploration through the route step ---------------------------------------------------------


def test_exploration_sends_the_drawn_share_to_random_tiers_and_records_the_policy_choice(
    ledger: Ledger, migrated_url: str, tmp_path: Path
) -> None:
    sim = sim_config(**{name: SimModel(name, 1.0, latency_ms=0) for name in MODELS.values()})
    with pipeline(ledger, sim, routing={"explore_share": 0.5}) as (runner, _):
        ids = runner.submit([f"hello {i}" for i in range(40)])  # the starter rules: cheap
        runner.run()

    _, hops, _ = ledger_rows(migrated_url)
    explored = 0
    for query_id in ids:
        route = hops[query_id][0]
        drawn = exploration_tier(str(query_id), 0.5, TIERS)
        if drawn is None:
            assert route.tier == "cheap" and "explore" not in route.details
            continue
        explored += 1
        assert route.tier == drawn  # every tier's window holds a short query
        assert route.details["explore"] is True and route.details["policy_choice"] == "cheap"
        assert route.reason.startswith(f"explored: {drawn} drawn at random")
        assert hops[query_id][1].tier == drawn  # the call went where exploration sent it
    assert 10 <= explored <= 30
    # so the export labels the tiers exploration drew (some chit-chat has a frontier label),
    # and marks the random sample
    lines = exported(ledger, tmp_path / "e.jsonl")
    assert lines == expected_lines(migrated_url)
    for line in lines:
        drawn = exploration_tier(line["id"], 0.5, TIERS)
        if drawn is None:
            assert "explore" not in line
        else:
            assert line["explore"] == {"tier": drawn, "policy_choice": "cheap", "share": 0.5}
    first_tiers = {str(i): exploration_tier(str(i), 0.5, TIERS) or "cheap" for i in ids}
    assert {line["id"]: tiers_of(line) for line in lines} == {
        i: {tier} for i, tier in first_tiers.items()
    }  # every tier's answer passes here, so each query has just the one label


def test_answer_score_normalises_the_judge_and_maps_heuristics_to_one_or_zero() -> None:
    def answer(passed: bool, score: float | None) -> JudgedAnswer:
        return JudgedAnswer(2, "cheap", "m", "text", passed, score, "llm")

    assert answer_score(answer(True, 7.0)) == 0.7
    assert answer_score(answer(False, 3.0)) == 0.3
    assert answer_score(answer(True, 12.0)) == 1.0  # kept within [0, 1]
    assert answer_score(answer(True, None)) == 1.0
    assert answer_score(answer(False, None)) == 0.0
