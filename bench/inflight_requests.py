"""What putting a provider request on the ledger *before* it is sent costs per call.

Compares, on a real Postgres, the ledger writes of one provider attempt:

- before: one transaction after the response (insert the request row, add its cost);
- now: a ``pending`` insert (with the lease renewal) before the request, then the update with
  its outcome and cost after it: two transactions.

Run (needs a Postgres where it may create and drop a scratch database):

    .venv/bin/python bench/inflight_requests.py [--calls 2000] \
        [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy import insert, update

from routeq.ledger import Ledger, NewQuery, make_engine
from routeq.ledger.migrate import upgrade
from routeq.ledger.repository import hops, queries, requests

PRICE = Decimal("0.15")


def one_transaction(ledger: Ledger, hop: object) -> None:
    """The write of an attempt as it was: one transaction after the response."""
    with ledger.engine.begin() as conn:
        conn.execute(
            insert(requests).values(
                hop_id=hop.id,
                delivery=hop.delivery,
                try_number=1,
                model="m",  # type: ignore[attr-defined]
                outcome="ok",
                http_status=200,
                input_tokens=100,
                output_tokens=50,
                input_price_per_mtok=PRICE,
                output_price_per_mtok=PRICE,
                cost=Decimal("0.0000225"),
                latency_ms=12,
            )
        )
        conn.execute(update(hops).where(hops.c.id == hop.id).values(cost=hops.c.cost + 1))  # type: ignore[attr-defined]
        conn.execute(
            update(queries)
            .where(queries.c.id == hop.query_id)  # type: ignore[attr-defined]
            .values(total_cost=queries.c.total_cost + 1)
        )


def pending_then_finished(ledger: Ledger, hop: object) -> None:
    """The write of an attempt now: pending before the request, completed after it."""
    request_id = ledger.begin_request(
        hop,
        try_number=1,
        model="m",
        input_price=PRICE,
        output_price=PRICE,  # type: ignore[arg-type]
        max_cost=Decimal("0.001"),
        lease_s=30,
    )
    ledger.finish_request(
        hop,
        request_id,
        outcome="ok",
        latency_ms=12,
        cost=Decimal("0.0000225"),  # type: ignore[arg-type]
        input_tokens=100,
        output_tokens=50,
        http_status=200,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument(
        "--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()
    name = f"routeq_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = args.admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        upgrade(url)
        engine = make_engine(url, pool_size=1)
        ledger = Ledger(engine)
        query_id = ledger.submit([NewQuery(text="bench", input_tokens=1)])[0].query_id
        hop = ledger.claim(query_id, 1, lease_s=600, max_deliveries=3).hop
        results = {}
        for label, write in (
            ("before: 1 transaction", one_transaction),
            ("now: pending + finish", pending_then_finished),
        ):
            for _ in range(200):  # warm up
                write(ledger, hop)
            samples = []
            for _ in range(args.calls):
                started = time.perf_counter()
                write(ledger, hop)
                samples.append((time.perf_counter() - started) * 1000)
            results[label] = samples
        print(f"{args.calls} provider attempts each, one connection, Postgres at {args.admin_url}")
        for label, samples in results.items():
            samples.sort()
            print(
                f"  {label:24} median {statistics.median(samples):.3f} ms   "
                f"p95 {samples[int(0.95 * len(samples))]:.3f} ms"
            )
        extra = statistics.median(results["now: pending + finish"]) - statistics.median(
            results["before: 1 transaction"]
        )
        print(f"  extra per attempt (median): {extra:.3f} ms")
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
