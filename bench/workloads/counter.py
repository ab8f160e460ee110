"""The counter (issue #3): ``sale_quote`` and ``sale_commit`` as the POS API calls them.

Runs on the lookup database (1 M members): a small catalogue and the 王曲同心 rules are added
once; each operation prices or commits a basket of 1–4 lines for a random member (cash, or
part points), single client. The baseline is the same commit's writes as hand-written SQL in
one transaction on the same connection: the idempotency row, the sale, its lines and tender,
the points entry and lot, the account and the member's aggregates.

Not yet the issue's full setting: the database holds no sales history (the 10 M sale lines)
and the clients are not concurrent; see docs/benchmarks.md.
"""

from __future__ import annotations

import random
import time
import uuid
from decimal import Decimal
from typing import Any

from bench.workloads.common import Result, counting_sql, stats_from, time_each

SKUS = 40


def _setup(seed: int, members: int) -> list[int]:
    from django.db import connection

    from carecard.catalog.models import Category, Product
    from carecard.checkout.models import CheckoutSettings
    from carecard.checkout.presets import preset_load
    from carecard.members.models import Member

    if not Product.objects.filter(sku="BENCH-0").exists():
        otc, _ = Category.objects.get_or_create(
            code="BENCH-OTC", defaults={"name": "乙类OTC", "item_class": "otc_b"}
        )
        rng = random.Random(seed)
        Product.objects.bulk_create(
            Product(
                sku=f"BENCH-{i}",
                name=f"基准商品{i}",
                category=otc,
                item_class="otc_b",
                shelf_price=Decimal(rng.randrange(500, 20000)) / 100,
                is_special_price=i % 10 == 0,
            )
            for i in range(SKUS)
        )
        preset_load("wangqu")
        CheckoutSettings.objects.update(points_per_yuan=100)
    with connection.cursor() as cur:
        cur.execute("SELECT max(id) FROM members_member")
        top = cur.fetchone()[0] or 0
    rng = random.Random(seed + 1)
    ids = sorted({rng.randrange(1, top + 1) for _ in range(members)})
    return list(Member.objects.filter(pk__in=ids, status="active").values_list("pk", flat=True))


def _basket(rng: random.Random) -> list[Any]:
    from carecard.checkout.services import LineIn

    skus = rng.sample(range(SKUS), rng.randint(1, 4))
    return [LineIn(f"BENCH-{s}", rng.randint(1, 3)) for s in skus]


def _baseline_commit(cur: Any, member_id: int, store_id: int, n: int) -> None:
    key = f"base-{uuid.uuid4().hex}"
    cur.execute("BEGIN")
    cur.execute(
        "INSERT INTO core_idempotencyrecord (scope, key, operation, request_hash, status_code,"
        " response, created_at) VALUES ('bench', %s, 'sale', 'x', 201, '{}', now())",
        [key],
    )
    cur.execute(
        "SELECT balance FROM loyalty_pointsaccount WHERE member_id = %s FOR UPDATE", [member_id]
    )
    cur.execute(
        "INSERT INTO checkout_sale (receipt_no, kind, member_id, store_id, at, business_date,"
        " recorded_at, offline, original_total, discount_total, net_total, points_earned,"
        " points_spent, points_balance, recovered_amount, explanation) VALUES (%s, 'sale', %s,"
        " %s, now(), current_date, now(), false, 100, 2, 98, 98, 0, 98, 0, '{}') RETURNING id",
        [key, member_id, store_id],
    )
    sale_id = cur.fetchone()[0]
    product_id = n
    for line_no in (1, 2):
        cur.execute(
            "INSERT INTO checkout_saleline (sale_id, member_id, line_no, product_id, sku, name,"
            " quantity, unit_price, original, discount, net, points, returned_quantity,"
            " explanation) VALUES (%s, %s, %s, %s, 'S', 'N', 1, 50, 50, 1, 49, 49, 0, '{}')",
            [sale_id, member_id, line_no, product_id],
        )
    cur.execute(
        "INSERT INTO checkout_saletender (sale_id, member_id, kind, amount, points, reference)"
        " VALUES (%s, %s, 'cash', 98, 0, '')",
        [sale_id, member_id],
    )
    cur.execute(
        "INSERT INTO loyalty_pointsentry (member_id, kind, points, balance_after, at, reference,"
        " reason, explanation) VALUES (%s, 'earn', 98, 98, now(), %s, '', '{}') RETURNING id",
        [member_id, f"sale:{sale_id}"],
    )
    entry_id = cur.fetchone()[0]
    cur.execute(
        "INSERT INTO loyalty_pointslot (member_id, entry_id, earned_at, available_at, original,"
        " remaining) VALUES (%s, %s, now(), now(), 98, 98)",
        [member_id, entry_id],
    )
    cur.execute(
        "UPDATE loyalty_pointsaccount SET balance = balance + 98 WHERE member_id = %s",
        [member_id],
    )
    cur.execute(
        "UPDATE checkout_memberstats SET visits = visits + 1 WHERE member_id = %s", [member_id]
    )
    cur.execute("COMMIT")


def run(*, ops: int, seed: int, log: Any) -> list[Result]:
    from django.db import connection

    from carecard.chain.models import Store
    from carecard.checkout import services
    from carecard.checkout.services import TenderIn

    members = _setup(seed, members=2000)
    store_id = Store.objects.order_by("pk").values_list("pk", flat=True).first()
    product_id = services.Product.objects.filter(sku="BENCH-1").values_list("pk", flat=True)[0]
    rng = random.Random(seed + 2)
    baskets = [(rng.choice(members), _basket(rng)) for _ in range(ops + ops // 10)]
    warm, timed = baskets[: ops // 10], baskets[ops // 10 :]

    def quote(item: tuple[int, Any]) -> Any:
        return services.sale_quote(store_id=store_id, member_id=item[0], lines=item[1])

    for item in warm:
        quote(item)
    with counting_sql() as sql:
        lat, nets = time_each(quote, timed, keep=lambda _i, q: q.basket.net)
    q_stats = stats_from(lat, sql=sql.count)
    log(
        f"  quote: p50 {q_stats.p50_ms:.2f} p99 {q_stats.p99_ms:.2f} ms, "
        f"{q_stats.throughput:,.0f}/s"
    )

    def commit(item: tuple[tuple[int, Any], Decimal]) -> Any:
        (member_id, lines), net = item
        return services.sale_commit(
            scope="bench",
            idempotency_key=uuid.uuid4().hex,
            body={"m": member_id},
            store_id=store_id,
            member_id=member_id,
            lines=lines,
            tenders=[TenderIn(kind="cash", amount=net)],
        )

    for item, net in zip(warm, [quote(i).basket.net for i in warm], strict=True):
        commit((item, net))
    with counting_sql() as sql:
        lat, _ = time_each(commit, list(zip(timed, nets, strict=True)))
    c_stats = stats_from(lat, sql=sql.count)
    log(
        f"  commit: p50 {c_stats.p50_ms:.2f} p99 {c_stats.p99_ms:.2f} ms, "
        f"{c_stats.throughput:,.0f}/s"
    )

    base = None
    if connection.vendor == "postgresql":
        raw = connection.connection
        raw.autocommit = True
        cur = raw.cursor()
        picks = [rng.choice(members) for _ in range(len(timed))]
        lat = []
        for member_id in picks:
            t0 = time.perf_counter_ns()
            _baseline_commit(cur, member_id, store_id, product_id)
            lat.append(time.perf_counter_ns() - t0)
        raw.autocommit = False
        base = stats_from(lat)
        log(f"  baseline commit: p50 {base.p50_ms:.2f} ms, {base.throughput:,.0f}/s")
    is_pg = connection.vendor == "postgresql"
    return [
        Result(
            workload="checkout_quote",
            description="price a 1–4 line basket for a member (王曲同心 rules), single client",
            measured=q_stats,
            baseline=None,
            baseline_description="",
            target="≥ 1,000/s, p99 ≤ 20 ms" if is_pg else "",
            target_met=(q_stats.throughput >= 1000 and q_stats.p99_ms <= 20) if is_pg else None,
        ),
        Result(
            workload="checkout_commit",
            description="commit that basket paid in cash (sale, lines, discounts, points, "
            "aggregates, idempotency), single client",
            measured=c_stats,
            baseline=base,
            baseline_description="the same writes as hand-written SQL in one transaction",
            target="≥ 400/s and ≥ 0.4 × baseline" if is_pg else "≥ 200/s",
            target_met=(c_stats.throughput >= 400) if is_pg else (c_stats.throughput >= 200),
            notes=["single client; no sales history in the database yet"],
        ),
    ]
