"""Two tills at once (C-2): concurrent commits for one member, with retries, lose and double
nothing; a worker killed in the middle of a commit leaves nothing half-written.

These use real transactions and real connections (one per thread or process), on whichever
database the suite runs on: CI runs them on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection, connections

from carecard.checkout import config, services
from carecard.checkout.models import MemberStats, Sale, SaleLine
from carecard.checkout.services import LineIn, TenderIn
from carecard.core.errors import DomainError
from carecard.core.models import IdempotencyRecord
from carecard.loyalty.models import PointsAccount, PointsEntry
from carecard.loyalty.selectors import verify_points
from carecard.loyalty.services import program_get
from tests.factories import make_member

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def _commit(member_id: int, store_id: int, key: str, tenders=None) -> services.CommitResult:
    tenders = tenders or [TenderIn(kind="cash", amount=Decimal("39.20"))]
    body = {"k": key, "t": [(t.kind, str(t.amount), t.points) for t in tenders]}
    return services.sale_commit(
        scope="terminal:9",
        idempotency_key=key,
        body=body,
        store_id=store_id,
        member_id=member_id,
        lines=[LineIn("P-VITC", 1)],
        tenders=tenders,
    )


def _run_threads(jobs):
    """Run callables at once, each on its own connection; returns results or exceptions."""
    results: list[object] = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def run(i, job):
        try:
            start.wait()
            results[i] = job()
        except Exception as exc:  # noqa: BLE001 — collected and asserted by the test
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_eight_tills_with_retries_lose_and_double_nothing(store, catalog, wangqu):
    member = make_member(store, name="周芷若")
    keys = [f"till-{t}-{n}" for t in range(8) for n in range(4)]
    jobs = [lambda k=k: _commit(member.pk, store.pk, k) for k in keys]
    # 10 % of the requests are retried, at the same moment as the first attempt.
    jobs += [lambda k=k: _commit(member.pk, store.pk, k) for k in keys[::10]]
    results = _run_threads(jobs)
    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == []
    first = {r.response["sale_id"] for r in results[: len(keys)]}
    retried = {r.response["sale_id"] for r in results[len(keys) :]}
    assert retried <= first
    assert len(first) == len(keys) == Sale.objects.count()
    assert IdempotencyRecord.objects.count() == len(keys)
    account = PointsAccount.objects.get(pk=member.pk)
    assert account.balance == 39 * len(keys)
    assert PointsEntry.objects.filter(member=member).count() == len(keys)
    stats = MemberStats.objects.get(pk=member.pk)
    assert stats.visits == len(keys)
    assert stats.spend == Decimal("39.20") * len(keys)
    assert verify_points() == []


def test_concurrent_points_payments_never_overspend(store, catalog, wangqu):
    member = make_member(store, name="张无忌")
    _commit(member.pk, store.pk, "fund", [TenderIn(kind="cash", amount=Decimal("39.20"))])
    program = program_get()
    program.pending_days = 7  # what these sales earn cannot pay the next one
    program.save()
    config.invalidate()
    # 39 points: each payment below takes 10 points (0.10 CNY); only 3 can succeed.
    pay = [TenderIn(kind="points", points=10), TenderIn(kind="cash", amount=Decimal("39.10"))]
    results = _run_threads(
        [lambda i=i: _commit(member.pk, store.pk, f"pay-{i}", pay) for i in range(6)]
    )
    ok = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(ok) == 3
    assert len(refused) == 3
    assert {r.code for r in refused} == {"insufficient_points"}
    # 39 − 30 spent + 3 × 39 earned on the cash part
    assert PointsAccount.objects.get(pk=member.pk).balance == 39 - 30 + 3 * 39
    assert verify_points() == []


_KILLED_COMMIT = """
import os, sys, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "carecard.settings")
import django
django.setup()
from decimal import Decimal
from django.conf import settings
settings.CARECARD_FIELD_KEYS = {key!r}
from carecard.checkout import config, services
from carecard.loyalty import services as points
real_earn = points.points_earn
def slow_earn(**kw):
    entry = real_earn(**kw)
    print("IN-COMMIT", flush=True)
    time.sleep(60)  # killed here, after the sale, lines and points are written
    return entry
points.points_earn = slow_earn
services.sale_commit(
    scope="terminal:9", idempotency_key="killed", body={{}}, store_id={store}, member_id={member},
    lines=[services.LineIn("P-VITC", 1)],
    tenders=[services.TenderIn(kind="cash", amount=Decimal("39.20"))],
)
"""


def test_worker_killed_mid_commit_leaves_nothing(store, catalog, wangqu):
    from tests.conftest import TEST_FIELD_KEY

    member = make_member(store, name="殷素素")
    env = dict(os.environ)
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = (
            f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or 'localhost'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        )
    else:
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    script = _KILLED_COMMIT.format(key=TEST_FIELD_KEY, store=store.pk, member=member.pk)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "IN-COMMIT", proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.2)
    assert not Sale.objects.exists()
    assert not SaleLine.objects.exists()
    assert not PointsEntry.objects.exists()
    assert not IdempotencyRecord.objects.exists()
    # The same key can be used again and commits normally.
    result = _commit(member.pk, store.pk, "killed")
    assert result.replayed is False
    assert PointsAccount.objects.get(pk=member.pk).balance == 39
