"""Bulk generator of benchmark members: 1 M rows in about a minute.

It does not call ``member_enrol`` (far too slow for a million rows) but writes rows of exactly the
shape that enrolment writes: ``members_member`` (phone, phone_tail, name, status, member_no,
referral_code, home_store, enrolled_at …), a virtual card ``"V" + member_no`` per member (plus a
physical card for some), and ``members_membersearchkey`` rows from
:func:`carecard.core.names.pinyin_keys`. Columns not set here get their model default, so a field
added later still gets a valid value.

Everything is deterministic by seed. Numbers that must be unique (phone, member number, referral
code, card number) come from an affine permutation of the row index, so no uniqueness check is
needed. Surnames follow their real frequency in China, so pinyin prefixes such as ``zw`` or ``wj``
match tens of thousands of members, as they do in a real chain: the worst cases are measured.

PostgreSQL is loaded with ``COPY``; SQLite with ``executemany`` in one transaction with
``synchronous=OFF`` for the duration of the build only.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

GENERATOR_VERSION = 3

# Surname frequencies (per mille, rounded) after the 2020 census, plus a few polyphonic and
# compound surnames that the pinyin index must handle (曾 z/c, 单 s/d, 解 x/j, 区 o/q, 欧阳 …).
SURNAMES: list[tuple[str, float]] = [
    ("王", 71),
    ("李", 70),
    ("张", 66),
    ("刘", 54),
    ("陈", 45),
    ("杨", 31),
    ("黄", 26),
    ("赵", 23),
    ("吴", 20),
    ("周", 19),
    ("徐", 16),
    ("孙", 15),
    ("马", 14),
    ("朱", 13),
    ("胡", 13),
    ("郭", 12),
    ("何", 11),
    ("林", 10),
    ("高", 10),
    ("罗", 9),
    ("郑", 9),
    ("梁", 8),
    ("谢", 8),
    ("宋", 7),
    ("唐", 7),
    ("许", 7),
    ("韩", 6),
    ("冯", 6),
    ("邓", 6),
    ("曹", 6),
    ("彭", 5),
    ("曾", 5),
    ("肖", 5),
    ("田", 5),
    ("董", 5),
    ("袁", 4),
    ("潘", 4),
    ("于", 4),
    ("蒋", 4),
    ("蔡", 4),
    ("余", 4),
    ("杜", 4),
    ("叶", 4),
    ("程", 4),
    ("苏", 4),
    ("魏", 4),
    ("吕", 4),
    ("丁", 4),
    ("任", 4),
    ("沈", 3),
    ("姚", 3),
    ("卢", 3),
    ("姜", 3),
    ("崔", 3),
    ("钟", 3),
    ("谭", 3),
    ("陆", 3),
    ("汪", 3),
    ("范", 3),
    ("金", 3),
    ("石", 3),
    ("廖", 3),
    ("贾", 3),
    ("夏", 3),
    ("韦", 3),
    ("付", 3),
    ("方", 3),
    ("白", 3),
    ("邹", 3),
    ("孟", 3),
    ("熊", 3),
    ("秦", 3),
    ("邱", 3),
    ("江", 3),
    ("尹", 3),
    ("薛", 2),
    ("闫", 2),
    ("段", 2),
    ("雷", 2),
    ("侯", 2),
    ("龙", 2),
    ("史", 2),
    ("陶", 2),
    ("黎", 2),
    ("贺", 2),
    ("顾", 2),
    ("毛", 2),
    ("郝", 2),
    ("龚", 2),
    ("邵", 2),
    ("万", 2),
    ("钱", 2),
    ("严", 2),
    ("覃", 2),
    ("武", 2),
    ("戴", 2),
    ("莫", 2),
    ("孔", 2),
    ("向", 2),
    ("汤", 2),
    ("单", 1),
    ("解", 0.5),
    ("查", 0.5),
    ("区", 0.3),
    ("乐", 0.5),
    ("欧阳", 0.5),
    ("司马", 0.2),
    ("诸葛", 0.1),
]
# Whole given names that are very common (伟, 芳, 秀英 …): a quarter of the members carry one.
_COMMON_GIVEN = (
    "伟 芳 娜 秀英 敏 静 丽 强 磊 军 洋 勇 艳 杰 娟 涛 明 超 秀兰 霞 平 刚 桂英 建华 建国 "
    "志强 海燕 红梅 玉兰 桂兰 文 华 斌 浩 宇 鑫 婷 欣怡 子涵 梓涵 一诺 浩然 俊杰 晓明 晓燕"
)
COMMON_GIVEN = _COMMON_GIVEN.split()
GIVEN_CHARS = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国志海燕红梅玉文斌浩宇鑫婷欣怡子涵"
    "梓诺然俊晓东林春梦雪琳晨嘉佳思雨睿博轩瑞凯天泽宏亮成龙飞鹏辉荣庆新光德福寿康安永长胜"
    "利丹萍莉凤琴云珍美淑慧惠颖彤悦璐倩蕾薇佩雯蓉岚晶洁秋菊香月娥凡乐和正清中"
)
GENDER_F = set(
    "芳娜秀英敏静丽艳娟霞兰桂梅燕玉婷欣怡梦雪琳嘉佳思雨丹萍莉凤琴云珍美淑慧惠颖彤悦璐倩蕾薇佩雯蓉岚晶洁秋菊香月娥"
)
PHONE_PREFIXES = [
    "130",
    "131",
    "132",
    "133",
    "134",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "173",
    "176",
    "177",
    "178",
    "180",
    "181",
    "182",
    "183",
    "184",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "198",
    "199",
]
DISTRICTS = ["上城区", "拱墅区", "西湖区", "滨江区", "萧山区", "余杭区", "临平区", "钱塘区"]
STREETS = ["文三路", "莫干山路", "延安路", "体育场路", "江南大道", "市心路", "文一西路", "凤起路"]
STORES = [(f"BENCH{n:02d}", f"基准药房{n:02d}店", DISTRICTS[n % len(DISTRICTS)]) for n in range(12)]
CHANNELS = [("in_store", 70), ("new_media", 15), ("community", 6), ("referral", 5), ("alliance", 4)]
STATUSES = [("active", 96.5), ("pending", 2.0), ("cancelled", 1.5)]
REFERRAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
PHYSICAL_CARD_SHARE = 0.3
EPOCH = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)
SPAN_SECONDS = int((dt.datetime(2026, 11, 1, tzinfo=dt.UTC) - EPOCH).total_seconds())


def _cum(weights: list[tuple[str, float]]) -> tuple[list[str], list[float]]:
    values, cum, total = [], [], 0.0
    for value, weight in weights:
        total += weight
        values.append(value)
        cum.append(total)
    return values, cum


def phone_for(i: int, *, salt: int = 0) -> str:
    """A unique mobile number for row ``i`` (an affine permutation inside each prefix)."""
    p = len(PHONE_PREFIXES)
    k = i // p
    return PHONE_PREFIXES[(i + salt) % p] + f"{(k * 73939133 + 4567 + salt * 7919) % 10**8:08d}"


def member_no_for(i: int) -> str:
    return "1" + f"{(i * 7777777 + 123456789) % 10**11:011d}"


def referral_code_for(i: int) -> str:
    v = (i * 1099511627 + 987654321) % 2**40
    chars = []
    for _ in range(8):
        v, r = divmod(v, 32)
        chars.append(REFERRAL_ALPHABET[r])
    return "".join(chars)


def physical_card_for(j: int) -> str:
    return "8" + f"{(j * 31415927 + 2718281) % 10**11:011d}"


class NameGen:
    """Chinese names with a realistic surname skew (deterministic given the rng)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.surnames, self.surname_cum = _cum(SURNAMES)

    def name(self) -> tuple[str, str]:
        rng = self.rng
        surname = rng.choices(self.surnames, cum_weights=self.surname_cum)[0]
        r = rng.random()
        if r < 0.25:
            given = rng.choice(COMMON_GIVEN)
        elif r < 0.45:
            given = rng.choice(GIVEN_CHARS)
        else:
            given = rng.choice(GIVEN_CHARS) + rng.choice(GIVEN_CHARS)
        female = given[-1] in GENDER_F
        gender = "F" if (female and rng.random() < 0.85) or rng.random() < 0.1 else "M"
        return surname + given, gender


@lru_cache(maxsize=400_000)
def search_keys(name: str) -> tuple[str, ...]:
    from carecard.core.names import pinyin_keys

    return tuple(k[:64] for k in pinyin_keys(name))


def member_rows(n: int, *, seed: int, store_ids: list[int]) -> Iterator[dict[str, Any]]:
    """Plain member dicts (attname → Python value) for ids 1..n."""
    rng = random.Random(seed)
    names = NameGen(rng)
    channels, channel_cum = _cum(CHANNELS)
    statuses, status_cum = _cum(STATUSES)
    for i in range(n):
        name, gender = names.name()
        phone = phone_for(i)
        district_i = rng.randrange(len(DISTRICTS))
        district = DISTRICTS[district_i]
        street = STREETS[rng.randrange(len(STREETS))]
        enrolled = EPOCH + dt.timedelta(seconds=rng.randrange(SPAN_SECONDS))
        age_days = rng.randrange(18 * 365, 90 * 365)
        completeness = rng.choice((40, 60, 80, 100))
        yield {
            "id": i + 1,
            "member_no": member_no_for(i),
            "status": rng.choices(statuses, cum_weights=status_cum)[0],
            "name": name,
            "gender": gender,
            "birthday": dt.date(2026, 11, 1) - dt.timedelta(days=age_days),
            "phone": phone,
            "phone_tail": phone[-4:],
            "address": f"浙江省杭州市{district}{street}{rng.randrange(1, 999)}号",
            "province": "浙江省",
            "city": "杭州市",
            "district": district,
            "community": f"{street}社区",
            "acquisition_channel": rng.choices(channels, cum_weights=channel_cum)[0],
            # Members mostly shop in their district's store.
            "home_store_id": store_ids[district_i % len(store_ids)]
            if rng.random() < 0.8
            else store_ids[rng.randrange(len(store_ids))],
            "referral_code": referral_code_for(i),
            "consent_marketing": rng.random() < 0.6,
            "consent_health": rng.random() < 0.4,
            "completeness": completeness,
            "is_complete": completeness == 100,
            "enrolled_at": enrolled,
            "updated_at": enrolled,
        }


class Loader:
    """Writes the generated rows into the migrated bench database (one Django connection)."""

    BATCH = 20_000

    def __init__(self, *, members: int, seed: int, log: Any = print) -> None:
        from django.db import connection

        self.connection = connection
        self.vendor = connection.vendor
        self.members = members
        self.seed = seed
        self.log = log
        self.counts: dict[str, int] = {}

    # -- helpers -------------------------------------------------------------------------------
    def _template(self, model: Any) -> tuple[list[str], list[str], list[Any]]:
        """Columns, attnames and the prepared default value of every concrete field."""
        columns, attnames, defaults = [], [], []
        for f in model._meta.concrete_fields:
            columns.append(f.column)
            attnames.append(f.attname)
            defaults.append(self._prep(f, f.get_default()))
        return columns, attnames, defaults

    def _prep(self, field: Any, value: Any) -> Any:
        from django.db import models

        if value is None:
            return None
        if isinstance(field, models.JSONField):
            return json.dumps(value, ensure_ascii=False)
        if isinstance(field, models.DateTimeField):
            return self.connection.ops.adapt_datetimefield_value(value)
        if isinstance(field, models.DateField):
            return self.connection.ops.adapt_datefield_value(value)
        if isinstance(field, models.DecimalField):
            return str(value)
        return field.get_db_prep_save(value, self.connection)

    def _write(self, table: str, columns: list[str], rows: Iterator[list[Any]]) -> int:
        count = 0
        cols = ", ".join(f'"{c}"' for c in columns)
        raw = self.connection.connection
        if self.vendor == "postgresql":
            with raw.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
            return count
        sql = f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(columns))})"
        cur = raw.cursor()
        batch: list[list[Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= self.BATCH:
                cur.executemany(sql, batch)
                count += len(batch)
                batch.clear()
        if batch:
            cur.executemany(sql, batch)
            count += len(batch)
        return count

    # -- build ---------------------------------------------------------------------------------
    def stores(self) -> list[int]:
        from carecard.chain.models import Region, Store

        region, _ = Region.objects.get_or_create(code="BENCH", defaults={"name": "基准片区"})
        ids = []
        for code, name, district in STORES:
            store, _ = Store.objects.get_or_create(
                code=code,
                defaults={
                    "name": name,
                    "region": region,
                    "province": "浙江省",
                    "city": "杭州市",
                    "district": district,
                    "opened_on": dt.date(2015, 1, 1),
                },
            )
            ids.append(store.pk)
        return ids

    def build(self) -> dict[str, Any]:
        from django.db import transaction

        from carecard.members.models import Card, Member, MemberSearchKey

        t0 = time.perf_counter()
        store_ids = self.stores()
        m_cols, m_attnames, m_defaults = self._template(Member)
        m_index = {a: k for k, a in enumerate(m_attnames)}
        m_fields = {f.attname: f for f in Member._meta.concrete_fields}
        c_cols, c_attnames, c_defaults = self._template(Card)
        c_index = {a: k for k, a in enumerate(c_attnames)}
        k_cols = ["member_id", "key"]
        cards: list[list[Any]] = []
        keys: list[list[Any]] = []
        card_rng = random.Random(self.seed + 1)
        physical = 0
        datetime_fields = {"enrolled_at", "updated_at"}
        date_fields = {"birthday"}
        adapt_dt = self.connection.ops.adapt_datetimefield_value
        adapt_d = self.connection.ops.adapt_datefield_value

        def members() -> Iterator[list[Any]]:
            nonlocal physical
            for values in member_rows(self.members, seed=self.seed, store_ids=store_ids):
                row = list(m_defaults)
                for attname, value in values.items():
                    if attname in datetime_fields:
                        value = adapt_dt(value)
                    elif attname in date_fields:
                        value = adapt_d(value)
                    elif isinstance(value, bool):
                        value = m_fields[attname].get_db_prep_save(value, self.connection)
                    row[m_index[attname]] = value
                member_id = values["id"]
                issued = adapt_dt(values["enrolled_at"])
                card = list(c_defaults)
                card[c_index["member_id"]] = member_id
                card[c_index["number"]] = "V" + values["member_no"]
                card[c_index["kind"]] = "virtual"
                card[c_index["status"]] = (
                    "cancelled" if values["status"] == "cancelled" else "active"
                )
                card[c_index["issued_at"]] = issued
                card[c_index["issued_store_id"]] = values["home_store_id"]
                cards.append(card)
                if card_rng.random() < PHYSICAL_CARD_SHARE:
                    card = list(card)
                    card[c_index["number"]] = physical_card_for(physical)
                    card[c_index["kind"]] = "physical"
                    physical += 1
                    cards.append(card)
                for key in search_keys(values["name"]):
                    keys.append([member_id, key])
                yield row

        def drain(buffer: list[list[Any]]) -> Iterator[list[Any]]:
            yield from buffer

        if self.vendor == "sqlite":
            with self.connection.cursor() as cur:
                cur.execute("PRAGMA synchronous=OFF")
                cur.execute("PRAGMA cache_size=-1048576")
        with transaction.atomic():
            # Members first (cards and keys are collected meanwhile, in member order), in chunks
            # so that the card and key buffers stay small.
            done = 0
            gen = members()
            while done < self.members:
                chunk = []
                for row in gen:
                    chunk.append(row)
                    if len(chunk) >= 100_000:
                        break
                if not chunk:
                    break
                self.counts["members"] = self.counts.get("members", 0) + self._write(
                    "members_member", m_cols, drain(chunk)
                )
                cards_batch = [[r[c_index[a]] for a in c_attnames if a != "id"] for r in cards]
                self.counts["cards"] = self.counts.get("cards", 0) + self._write(
                    "members_card",
                    [c for c, a in zip(c_cols, c_attnames, strict=True) if a != "id"],
                    drain(cards_batch),
                )
                self.counts["search_keys"] = self.counts.get("search_keys", 0) + self._write(
                    "members_membersearchkey", k_cols, drain(keys)
                )
                cards.clear()
                keys.clear()
                done += len(chunk)
                self.log(f"  … {done:,} members ({time.perf_counter() - t0:.0f} s)")
            if self.vendor == "postgresql":
                with self.connection.cursor() as cur:
                    cur.execute(
                        "SELECT setval(pg_get_serial_sequence('members_member', 'id'), "
                        "(SELECT max(id) FROM members_member))"
                    )
        load_s = time.perf_counter() - t0
        with self.connection.cursor() as cur:
            if self.vendor == "postgresql":
                cur.execute("VACUUM ANALYZE members_member")
                cur.execute("VACUUM ANALYZE members_card")
                cur.execute("VACUUM ANALYZE members_membersearchkey")
            else:
                cur.execute("PRAGMA synchronous=FULL")
                cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        # MemberSearchKey is referenced so that ruff keeps the import honest about the shape.
        assert MemberSearchKey._meta.db_table == "members_membersearchkey"
        return {
            "members": self.counts.get("members", 0),
            "cards": self.counts.get("cards", 0),
            "search_keys": self.counts.get("search_keys", 0),
            "load_seconds": round(load_s, 1),
            "total_seconds": round(time.perf_counter() - t0, 1),
        }
