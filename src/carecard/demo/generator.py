"""The deterministic demo chain (I-4): one city, its stores and zones, staff, a catalogue and
members with realistic names, phones, addresses, ages, chronic conditions and interests.

Everything is drawn from ``random.Random`` instances seeded from ``seed``; the only notion of
"today" is ``today`` (default :data:`DEMO_TODAY`), so the same seed on an empty database gives the
same chain and the same members. Stores, zones, staff, products, groups and households are written
through the chain, catalog and member services. Members go either through ``member_enrol`` one by
one (``writer="service"``) or through :class:`BulkEnroller`, which validates every form with the
same ``clean_member`` and writes exactly the rows ``member_enrol`` writes, batched (the default:
``member_enrol`` costs ~10 ms a member on SQLite, too slow for the one-minute first start). A test
enrols the same seed both ways and compares the results. With a spare core (:mod:`.workers`) a
worker process prepares half of the bulk enrolment rows and draws the sales plan meanwhile.

The chain runs one of the published rule sets (``checkout.presets``; 王曲 by default), stored value
with the policy's defaults and the demo's bonus tiers where the rules set none, and has twelve
months of sales up to ``today`` (:mod:`carecard.demo.sales`) with points redemptions, vouchers
used, top-ups and stored-value payments, written the same two ways. Members who joined before
those months are taken to have made their qualifying purchase then (entry rule "card after one
purchase"); those who join during them become members at their first purchase.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.contrib.auth.hashers import make_password
from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.db.models import Max, Model
from django.utils import timezone

from carecard.catalog import services as catalog_services
from carecard.chain import services as chain_services
from carecard.chain.models import Staff, Store, TradingZone
from carecard.checkout import config
from carecard.checkout.presets import PRESETS, preset_load
from carecard.core.audit import AuditAction
from carecard.core.crypto import blind_index
from carecard.core.errors import ValidationFailed
from carecard.core.models import AuditEntry
from carecard.core.names import pinyin_keys
from carecard.core.roles import Role
from carecard.demo import data as D
from carecard.demo import sales as demo_sales
from carecard.demo import workers
from carecard.demo.people import (
    SHANGHAI,
    MemberSpec,
    NameMaker,
    PhoneMaker,
    StoreSpec,
    ZoneInfoSpec,
    group_count,
    group_store,
    member_specs,
)
from carecard.demo.workers import Background
from carecard.loyalty.rules import matches
from carecard.members import services as member_services
from carecard.members.models import (
    Card,
    CardKind,
    CardStatus,
    Consent,
    ConsentPurpose,
    EntryRule,
    Member,
    MemberGroup,
    MemberSearchKey,
    MembershipPolicy,
    MemberStatus,
)
from carecard.members.validation import clean_member
from carecard.wallet.models import TopupRule, WalletPolicy

DEMO_TODAY = dt.date(2026, 10, 31)
DEMO_PRESET = "wangqu"  # the member rules the demo chain runs (checkout.presets)
CHUNK = 2000

# The printed demo logins: (role label, username).
LOGINS: list[tuple[str, str]] = [
    ("营业员", "clerk01"),
    ("药师", "pharm01"),
    ("店长", "manager01"),
    ("营运企划", "marketing01"),
    ("总部管理员", "admin01"),
    ("审计", "auditor01"),
]

_REFERRAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_CENT = Decimal("0.01")


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def demo_exists() -> bool:
    return Store.objects.exists()


def logins() -> list[tuple[str, str, str]]:
    """(role label, username, store name or 总部) for the fixed demo logins that exist."""
    staff = {
        s.username: s
        for s in Staff.objects.filter(username__in=[u for _label, u in LOGINS]).select_related(
            "home_store"
        )
    }
    return [
        (label, username, staff[username].home_store.name if staff[username].home_store else "总部")
        for label, username in LOGINS
        if username in staff
    ]


def store_count(members: int) -> int:
    """12 stores at the default 20 000 members, a few more or fewer with the size."""
    return max(6, min(len(D.STORE_SITES), round(12 * (max(members, 1) / 20000) ** 0.25)))


# ---------------------------------------------------------------------------------------------
# Chain and staff
# ---------------------------------------------------------------------------------------------


def _staff_plan(index: int, weight: float) -> list[tuple[str, str, float]]:
    """(username, role, share of enrolments) for store number ``index + 1``."""
    k = f"{index + 1:02d}"
    plan = [(f"manager{k}", Role.STORE_MANAGER, 0.10), (f"pharm{k}", Role.PHARMACIST, 0.12)]
    if weight >= 1.0:
        plan.append((f"pharm{k}-2", Role.PHARMACIST, 0.08))
    clerks = 2 + (weight >= 0.8) + (weight >= 1.2)
    # The first clerk is the store's best recruiter (uneven shares make the KPI pages useful).
    shares = [0.35, 0.25, 0.15, 0.10][:clerks]
    for j, share in enumerate(shares):
        plan.append((f"clerk{k}" if j == 0 else f"clerk{k}-{j + 1}", Role.CLERK, share))
    return plan


def _build_chain(
    rng: random.Random, n_stores: int, members: int, password_hash: str
) -> tuple[list[Store], list[StoreSpec], dict[str, Staff]]:
    regions = {code: chain_services.region_upsert(code=code, name=name) for code, name in D.REGIONS}
    names = NameMaker(rng)
    phones = PhoneMaker(rng)
    scale = max(1.0, members / 20000)
    stores: list[Store] = []
    specs: list[StoreSpec] = []
    staff: dict[str, Staff] = {}
    admin = None
    for username, role, _title in D.HQ_STAFF:
        gender = "F" if rng.random() < 0.6 else "M"
        person = chain_services.staff_create(
            actor=admin,
            username=username,
            password="",
            password_hash=password_hash,
            role=role,
            display_name=names.name(gender, rng.randint(1975, 1995)),
            staff_code=f"HQ{len(staff) + 1:02d}",
            mobile=phones.make(),
            check_password=False,
        )
        staff[username] = person
        if role == Role.HQ_ADMIN:
            admin = person
    for index, site in enumerate(D.STORE_SITES[:n_stores]):
        region_code, district, short, street, opened_on, weight, zones = site
        store = chain_services.store_upsert(
            code=f"SH{index + 1:03d}",
            name=f"{D.CHAIN_NAME}({short})",
            region=regions[region_code],
            province=D.PROVINCE,
            city=D.CITY,
            district=district,
            street=street,
            phone=f"021-{rng.randint(5000_0000, 6999_9999)}",
            opened_on=opened_on,
        )
        stores.append(store)
        zone_specs = []
        for zone_name, road, communities in zones:
            households = int(rng.randint(40, 150) * 100 * scale)
            chain_services.zone_upsert(
                store=store,
                name=zone_name,
                district=district,
                keywords=list(communities),
                households=households,
            )
            zone_specs.append(
                ZoneInfoSpec(index, zone_name, district, road, tuple(communities), households)
            )
        plan = _staff_plan(index, weight)
        for j, (username, role, _share) in enumerate(plan):
            gender = "F" if rng.random() < (0.75 if role == Role.CLERK else 0.55) else "M"
            staff[username] = chain_services.staff_create(
                actor=admin,
                username=username,
                password="",
                password_hash=password_hash,
                role=role,
                display_name=names.name(gender, rng.randint(1968, 2002)),
                home_store=store,
                staff_code=f"S{index + 1:02d}{j + 1:02d}",
                mobile=phones.make(),
                check_password=False,
            )
        specs.append(
            StoreSpec(
                index=index,
                region=region_code,
                district=district,
                opened_on=opened_on,
                weight=weight,
                zones=tuple(zone_specs),
                staff=tuple((u, share) for u, _role, share in plan),
            )
        )
    return stores, specs, staff


# ---------------------------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------------------------


def _ean13(rng: random.Random) -> str:
    body = "69" + f"{rng.randrange(10**10):010d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _money(value: Decimal | float) -> Decimal:
    return Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP)


def _build_catalog(rng: random.Random) -> int:
    categories: dict[str, Any] = {}
    for code, name, parent, item_class in D.CATEGORIES:
        categories[code] = catalog_services.category_upsert(
            code=code, name=name, parent=categories.get(parent), item_class=item_class
        )
    classes = {
        code: catalog_services.drug_class_upsert(code=code, name=name)
        for code, name in D.DRUG_CLASSES
    }
    rows: list[dict[str, Any]] = []
    for cat, name, ingredients, class_codes, dose, per_day, flags, variants in D.PRODUCTS:
        for brand, maker, spec, pack, unit, price in variants:
            rows.append(
                {
                    "cat": cat,
                    "name": name,
                    "brand": brand,
                    "manufacturer": maker,
                    "specification": spec,
                    "pack_size": pack,
                    "unit": unit,
                    "label_dose": dose,
                    "days_supply": pack // per_day if per_day else None,
                    "price": Decimal(price),
                    "flags": flags.split(),
                    "ingredients": ingredients,
                    "classes": class_codes,
                }
            )
    for cat, name, brand, maker, spec, pack, unit, price, flags, days in D.ITEMS:
        rows.append(
            {
                "cat": cat,
                "name": name,
                "brand": brand,
                "manufacturer": maker,
                "specification": spec,
                "pack_size": pack,
                "unit": unit,
                "label_dose": "",
                "days_supply": days,
                "price": Decimal(price),
                "flags": flags.split(),
                "ingredients": [],
                "classes": [],
            }
        )
    for n, row in enumerate(rows, start=1):
        category = categories[row["cat"]]
        is_rx = category.item_class == "rx"
        price = row["price"]
        margin = rng.uniform(0.22, 0.38) if is_rx else rng.uniform(0.3, 0.55)
        member_price = None
        if not is_rx and rng.random() < 0.4:
            member_price = _money(price * Decimal(str(rng.choice([0.85, 0.88, 0.9, 0.95]))))
        promo_roll = rng.random()
        catalog_services.product_upsert(
            sku=f"{100000 + n}",
            category=category,
            barcode=_ean13(rng),
            name=row["name"],
            brand=row["brand"],
            manufacturer=row["manufacturer"],
            specification=row["specification"],
            pack_size=row["pack_size"],
            unit=row["unit"],
            label_dose=row["label_dose"],
            days_supply=row["days_supply"],
            shelf_price=price,
            member_price=member_price,
            cost=_money(price * Decimal(str(1 - margin))),
            is_special_price=not is_rx and promo_roll < 0.05,
            is_limited=not is_rx and 0.05 <= promo_roll < 0.07,
            is_promotional=not is_rx and 0.07 <= promo_roll < 0.14,
            is_insurance_listed="ins" in row["flags"],
            contains_ephedrine="eph" in row["flags"],
            ingredients=list(row["ingredients"]),
            drug_classes=[classes[c] for c in row["classes"]],
        )
    return len(rows)


# ---------------------------------------------------------------------------------------------
# Members
# ---------------------------------------------------------------------------------------------


def _member_no(index: int, seed: int) -> str:
    # An affine map with a multiplier coprime to 10 is a permutation of 0..10**11-1: unique.
    return "8" + f"{(index * 7_919_113 + 104_729 * (seed % 1000) + 1) % 10**11:011d}"


def _referral_code(index: int, seed: int) -> str:
    value = (index * 1_099_511_627 + 987_654_321 + seed) % 2**40  # odd multiplier: permutation
    chars = []
    for _ in range(8):
        value, r = divmod(value, 32)
        chars.append(_REFERRAL_ALPHABET[r])
    return "".join(chars)


# (model, field names, database-ready rows) to insert, in order.
_Tables = list[tuple[type[Model], list[str], list[tuple[Any, ...]]]]


class BulkEnroller:
    """Writes enrolments in batches with the rows and values ``member_enrol`` would write.

    Forms are validated by ``clean_member`` (the function the service, the console and the API
    use) and refused the same way; uniqueness of phone and ID number rests on the database
    constraints, which abort the batch. Zone assignment follows ``members.services.zone_for``
    over the zones loaded once. Member numbers and referral codes are deterministic by index.
    """

    def __init__(self, *, seed: int, qualified_before: dt.datetime | None = None) -> None:
        self.seed = seed
        self.qualified_before = qualified_before
        self.policy: MembershipPolicy = member_services.policy_get()
        self.zones: dict[int, list[TradingZone]] = defaultdict(list)
        for zone in TradingZone.objects.select_related("store").order_by("store_id", "pk"):
            self.zones[zone.store.region_id].append(zone)
        self.next_id = (Member.objects.aggregate(top=Max("pk"))["top"] or 0) + 1
        # Values of these field types reach the database as they are; the others (dates, JSON,
        # encrypted text, decimals) go through the field's get_db_prep_save.
        plain = (models.CharField, models.BooleanField, models.IntegerField, models.ForeignKey)
        self.member_fields = [
            (f, f.attname, isinstance(f, plain)) for f in Member._meta.concrete_fields
        ]
        self.versions = {
            ConsentPurpose.TERMS: self.policy.terms_version,
            ConsentPurpose.MARKETING: self.policy.marketing_text_version,
            ConsentPurpose.HEALTH_DATA: self.policy.health_text_version,
        }

    def zone_for(
        self, *, store: Store, district: str, community: str, address: str
    ) -> TradingZone | None:
        text = f"{community}{address}"
        best = None
        for zone in self.zones[store.region_id]:
            if district and zone.district not in (district, ""):
                continue
            if zone.keywords and any(k and k in text for k in zone.keywords):
                if zone.store_id == store.pk:
                    return zone
                best = best or zone
        return best

    def _member_rows(self, members: list[Member]) -> list[tuple[Any, ...]]:
        """The members as ``Model.save`` would store them (each field's own database
        preparation: encryption, JSON, dates), without the ORM's per-row SQL compilation."""
        now = timezone.now()
        rows = []
        for member in members:
            member.updated_at = now
            rows.append(
                tuple(
                    getattr(member, attname)
                    if plain
                    else field.get_db_prep_save(getattr(member, attname), connection)
                    for field, attname, plain in self.member_fields
                )
            )
        return rows

    def _status(self, enrolled_at: dt.datetime) -> str:
        rule = self.policy.entry_rule
        if rule in (EntryRule.PURCHASE, EntryRule.PAID) and not _qualified(
            enrolled_at, self.qualified_before
        ):
            return MemberStatus.PENDING  # no qualifying purchase or fee at a demo enrolment
        return MemberStatus.ACTIVE

    def write(
        self,
        batch: Sequence[MemberSpec],
        *,
        stores: Sequence[Store],
        staff: dict[str, Staff],
        groups: Sequence[MemberGroup],
        created: dict[int, int],
    ) -> None:
        """Enrol a batch; ``created`` maps spec index → member id (referrers resolve there)."""
        self.allocate(batch, created)
        self.insert(self.prepare(batch, stores=stores, staff=staff, groups=groups, created=created))

    def allocate(self, batch: Sequence[MemberSpec], created: dict[int, int]) -> None:
        """Give the batch the next member ids, in order, in ``created``."""
        for i, spec in enumerate(batch):
            created[spec.index] = self.next_id + i
        self.next_id += len(batch)

    @staticmethod
    def insert(tables: _Tables) -> None:
        """Insert the rows :meth:`prepare` made (members first)."""
        for model, fields, rows in tables:
            _insert(model, fields, rows)
        if connection.vendor == "postgresql":
            # Explicit ids bypass the sequence: move it past them.
            with connection.cursor() as cursor:
                for sql in connection.ops.sequence_reset_sql(no_style(), [Member]):
                    cursor.execute(sql)

    def prepare(
        self,
        batch: Sequence[MemberSpec],
        *,
        stores: Sequence[Store],
        staff: dict[str, Staff],
        groups: Sequence[MemberGroup],
        created: dict[int, int],
    ) -> _Tables:
        """The database-ready rows of a batch, the members under the ids :meth:`allocate` gave
        them in ``created`` (referrers resolve there too). Reads nothing from the database, so a
        worker process may prepare batches while this one inserts others."""
        tables: _Tables = []
        members: list[Member] = []
        extras: list[tuple[MemberSpec, dict[str, bool], str]] = []
        for spec in batch:
            now = spec.enrolled_at
            today = timezone.localdate(now)
            values, errors = clean_member(spec.data, today=today)
            if errors:
                raise ValidationFailed(errors)
            group = groups[spec.group] if spec.group is not None else None
            if group is not None and "acquisition_channel" not in spec.data:
                values["acquisition_channel"] = "group"
            member_services.fill_address(values)
            id_index = blind_index(values["id_number"]) if values["id_number"] else None
            pct, complete = member_services.completeness(values, self.policy.required_fields)
            consents = {
                p: values.pop(f"consent_{p}") for p in ("terms", "marketing", "health_data")
            }
            valid_until = member_services.valid_until_for(self.policy.validity_years, today)
            store = stores[spec.store]
            status = self._status(now)
            member = Member(
                **values,
                member_no=_member_no(spec.index, self.seed),
                referral_code=_referral_code(spec.index, self.seed),
                external_code=None,
                id_number_index=id_index,
                phone_tail=(values["phone"] or "")[-4:],
                status=status,
                home_store=store,
                enrolled_by=staff[spec.staff],
                referrer_id=created[spec.referrer] if spec.referrer is not None else None,
                group=group,
                zone=self.zone_for(
                    store=store,
                    district=values.get("district", ""),
                    community=values.get("community", ""),
                    address=values.get("address", ""),
                ),
                consent_marketing=consents["marketing"],
                consent_health=consents["health_data"],
                completeness=pct,
                is_complete=complete,
                valid_until=valid_until,
                enrolled_at=now,
            )
            # Ids are allocated beforehand so a referrer in the same batch can be pointed at.
            member.pk = created[spec.index]
            members.append(member)
            extras.append((spec, consents, status))
        fields = [field.name for field, _a, _p in self.member_fields]
        tables.append((Member, fields, self._member_rows(members)))

        # The child rows (cards, consents, pinyin keys, audit entries: ~9 a member) are inserted
        # as plain rows; building 200 000 model instances would cost most of the demo's minute.
        ops = connection.ops
        logged_at = ops.adapt_datetimefield_value(timezone.now())
        cards: list[tuple[Any, ...]] = []
        consent_rows: list[tuple[Any, ...]] = []
        keys: list[tuple[Any, ...]] = []
        audits: list[tuple[Any, ...]] = []
        zero_fee = ops.adapt_decimalfield_value(Decimal("0"), 8, 2)
        for member, (spec, consents, status) in zip(members, extras, strict=True):
            at = ops.adapt_datetimefield_value(spec.enrolled_at)
            actor = member.enrolled_by
            actor_id = actor.pk if actor else None
            cards.append(
                (
                    "V" + member.member_no,
                    CardKind.VIRTUAL,
                    CardStatus.ACTIVE,
                    at,
                    member.home_store_id,
                    zero_fee,
                    "",
                    member.pk,
                )
            )
            physical = str(spec.data.get("card_number") or "").strip()
            if physical:
                cards.append(
                    (
                        physical,
                        CardKind.PHYSICAL,
                        CardStatus.ACTIVE,
                        at,
                        member.home_store_id,
                        zero_fee,
                        "",
                        member.pk,
                    )
                )
            for purpose, granted in consents.items():
                consent_rows.append(
                    (
                        member.pk,
                        purpose,
                        granted,
                        self.versions[purpose],
                        spec.channel,
                        at,
                        actor_id,
                    )
                )
            keys.extend((member.pk, k[:64]) for k in pinyin_keys(member.name))
            audits.append(
                (
                    logged_at,
                    actor_id,
                    actor.get_username() if actor else "",
                    None,
                    AuditAction.MEMBER_ENROL,
                    member.pk,
                    member.home_store_id,
                    f"member:{member.member_no}",
                    ops.adapt_json_value({"channel": spec.channel, "status": status}, None),
                    None,
                )
            )
        tables.append(
            (
                Card,
                ["number", "kind", "status", "issued_at", "issued_store", "fee", "note", "member"],
                cards,
            )
        )
        tables.append(
            (
                Consent,
                ["member", "purpose", "granted", "text_version", "channel", "at", "recorded_by"],
                consent_rows,
            )
        )
        tables.append((MemberSearchKey, ["member", "key"], keys))
        tables.append(
            (
                AuditEntry,
                [
                    "at",
                    "actor",
                    "actor_label",
                    "terminal_id",
                    "action",
                    "member_id",
                    "store_id",
                    "target",
                    "detail",
                    "ip",
                ],
                audits,
            )
        )
        return tables


def _insert(model: type[Model], fields: list[str], rows: list[tuple[Any, ...]]) -> None:
    """INSERT already database-ready rows into the model's table (executemany)."""
    if not rows:
        return
    qn = connection.ops.quote_name
    columns = ", ".join(qn(model._meta.get_field(name).column) for name in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {qn(model._meta.db_table)} ({columns}) VALUES ({marks})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _qualified(enrolled_at: dt.datetime, qualified_before: dt.datetime | None) -> bool:
    """Whether an enrolment counts as made with its qualifying purchase (or fee): those before
    the replayed months of sales, whose purchases the demo does not contain."""
    return qualified_before is not None and enrolled_at < qualified_before


def _enrol_via_service(
    batch: Sequence[MemberSpec],
    *,
    stores: Sequence[Store],
    staff: dict[str, Staff],
    groups: Sequence[MemberGroup],
    created: dict[int, int],
    qualified_before: dt.datetime | None = None,
) -> None:
    threshold = member_services.policy_get().entry_min_purchase
    for spec in batch:
        qualified = _qualified(spec.enrolled_at, qualified_before)
        data = dict(spec.data)
        if spec.referrer is not None:
            data["referrer"] = Member.objects.values_list("referral_code", flat=True).get(
                pk=created[spec.referrer]
            )
        if spec.group is not None:
            data["group"] = groups[spec.group].pk
        created[spec.index] = member_services.member_enrol(
            actor=staff[spec.staff],
            store=stores[spec.store],
            data=data,
            channel=spec.channel,
            enrolled_at=spec.enrolled_at,
            qualifying_amount=threshold if qualified else None,
            fee_paid=qualified,
        ).pk


def _chunks(items: Sequence[MemberSpec], size: int) -> Iterable[Sequence[MemberSpec]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextlib.contextmanager
def _relaxed_sync() -> Iterator[None]:
    """SQLite: no fsync at every commit while the demo is built (WAL with synchronous=NORMAL
    stays consistent; a crash loses at most the last commits of a half-built demo, which
    ``--fresh`` rebuilds). The connection's own setting comes back afterwards."""
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous")
        (before,) = cursor.fetchone()
        cursor.execute("PRAGMA synchronous=NORMAL")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA synchronous={int(before)}")


def generate_demo(
    *,
    members: int = 20000,
    seed: int = 42,
    password: str,
    today: dt.date | None = None,
    writer: str = "bulk",
    progress: Callable[[str], None] | None = _say,
    preset: str | None = DEMO_PRESET,
    sales: bool = True,
    sales_months: int = 12,
    return_rate: float = demo_sales.RETURN_RATE,
    wallet_share: float = demo_sales.WALLET_SHARE,
    redeem_share: float = demo_sales.REDEEM_SHARE,
) -> dict[str, Any]:
    """Build the whole demo chain into an empty database; returns counts and timings.

    ``preset`` names the member rules the chain runs (``checkout.presets``; None keeps the
    defaults); ``sales`` adds the ``sales_months`` of sales that end on ``today``, with the
    points redemptions of ``redeem_share`` of the members and the stored value of
    ``wallet_share`` of them (:func:`demo_sales.plan_sales`). ``writer`` chooses the services
    or the bulk writers, for members and sales alike."""
    if writer not in ("bulk", "service"):
        raise ValueError("writer must be 'bulk' or 'service'")
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}")
    with _relaxed_sync():
        return _generate(
            members=members,
            seed=seed,
            password=password,
            today=today or DEMO_TODAY,
            writer=writer,
            progress=progress,
            preset=preset,
            sales=sales,
            sales_months=sales_months,
            return_rate=return_rate,
            wallet_share=wallet_share,
            redeem_share=redeem_share,
        )


def _generate(
    *,
    members: int,
    seed: int,
    password: str,
    today: dt.date,
    writer: str,
    progress: Callable[[str], None] | None,
    preset: str | None,
    sales: bool,
    sales_months: int,
    return_rate: float,
    wallet_share: float,
    redeem_share: float,
) -> dict[str, Any]:
    say = progress or (lambda _text: None)
    started = time.perf_counter()
    n_stores = store_count(members)
    window = demo_sales.window_start(today, sales_months)
    qualified_before = dt.datetime.combine(window, dt.time(0), tzinfo=SHANGHAI)
    with transaction.atomic():
        member_services.policy_get()
        if preset is not None:
            preset_load(preset)
        _wallet_settings()
        stores, store_specs, staff = _build_chain(
            random.Random(f"carecard-demo-chain-{seed}"),
            n_stores,
            members,
            make_password(password),
        )
        n_products = _build_catalog(random.Random(f"carecard-demo-catalog-{seed}"))
        groups = []
        group_rng = random.Random(f"carecard-demo-groups-{seed}")
        group_names = NameMaker(group_rng)
        group_phones = PhoneMaker(group_rng)
        for g, (org, code, _role) in enumerate(D.GROUPS[: group_count(n_stores)]):
            store_index = group_store(g, n_stores)
            groups.append(
                member_services.group_create(
                    store=stores[store_index],
                    name=org,
                    org_code=code,
                    contact_name=group_names.name("F" if g else "M", 1972),
                    contact_phone=group_phones.make(),
                    discount_rate=Decimal("0.95"),
                )
            )
    chain_seconds = time.perf_counter() - started
    say(
        f"  门店 {len(stores)} 家，员工 {len(staff)} 人，商品 {n_products} 个 "
        f"({chain_seconds:.1f} s)"
    )

    specs = member_specs(members, seed=seed, stores=store_specs, today=today, n_groups=len(groups))
    say(f"  会员资料已生成 (member profiles drawn, {time.perf_counter() - started:.1f} s)")
    created: dict[int, int] = {}  # spec index → member id; ids only, so any size fits
    planning: Background[demo_sales.SalesPlan] | None = None
    if sales:
        # The plan is pure: a worker process draws it while this one enrols.
        planning = Background(
            _sales_planner(
                specs,
                store_specs,
                seed=seed,
                today=today,
                months=sales_months,
                return_rate=return_rate,
                wallet_share=wallet_share,
                redeem_share=redeem_share,
            )
        )
    last_report = time.perf_counter()

    def report() -> None:
        nonlocal last_report
        if time.perf_counter() - last_report > 3 or len(created) == len(specs):
            last_report = time.perf_counter()
            say(f"  会员 {len(created)}/{len(specs)} ({last_report - started:.1f} s)")

    if writer == "bulk":
        bulk = BulkEnroller(seed=seed, qualified_before=qualified_before)
        batches = list(_chunks(specs, CHUNK))
        ids: dict[int, int] = {}
        for batch in batches:
            bulk.allocate(batch, ids)
        # With a spare core a worker prepares the second half of the batches while this
        # process prepares and inserts the first; the rows are inserted in order either way.
        split = len(batches) // 2 if workers.available() else len(batches)
        later = batches[split:]

        def prepare(batch: Sequence[MemberSpec]) -> _Tables:
            return bulk.prepare(batch, stores=stores, staff=staff, groups=groups, created=ids)

        preparing = Background(lambda: [prepare(batch) for batch in later]) if later else None
        try:
            for batch in batches[:split]:
                with transaction.atomic():
                    bulk.insert(prepare(batch))
                created.update((spec.index, ids[spec.index]) for spec in batch)
                report()
            if preparing is not None:
                for batch, tables in zip(later, preparing.result(), strict=True):
                    with transaction.atomic():
                        bulk.insert(tables)
                    created.update((spec.index, ids[spec.index]) for spec in batch)
                    report()
        except BaseException:
            for job in (preparing, planning):
                if job is not None:
                    job.close()
            raise
    else:
        for batch in _chunks(specs, 500):
            with transaction.atomic():
                _enrol_via_service(
                    batch,
                    stores=stores,
                    staff=staff,
                    groups=groups,
                    created=created,
                    qualified_before=qualified_before,
                )
            report()

    households = 0
    family = [(s.index, s.household_of) for s in specs if s.household_of is not None]
    people = Member.objects.in_bulk({created[i] for pair in family for i in pair})
    with transaction.atomic():
        holders: dict[int, Any] = {}
        for index, holder_index in family:
            holder = people[created[holder_index]]
            household = holders.get(holder_index)
            if household is None:
                household = member_services.household_create(
                    holder=holder, name=f"{holder.name}家", share_points=len(holders) % 3 == 0
                )
                holders[holder_index] = household
                households += 1
            member_services.household_add(household=household, member=people[created[index]])

    counts: dict[str, int] = {}
    if planning is not None:
        plan = planning.result()
        say(
            f"  销售计划 {len(plan.sales)} 单、退货 {len(plan.returns)} 单 "
            f"(sales planned, {time.perf_counter() - started:.1f} s)"
        )
        counts = demo_sales.write_sales(
            plan,
            writer=writer,
            members=created,
            stores=stores,
            staff=staff,
            progress=say,
        )
        say(f"  销售 {counts['sales']} 单 ({time.perf_counter() - started:.1f} s)")

    elapsed = time.perf_counter() - started
    return {
        "stores": len(stores),
        "zones": sum(len(s.zones) for s in store_specs),
        "staff": len(staff),
        "products": n_products,
        "members": len(created),
        "households": households,
        "groups": len(groups),
        "likely_duplicates": sum(1 for s in specs if "duplicate" in s.tags),
        "preset": preset or "",
        "sales": counts.get("sales", 0),
        "returns": counts.get("returns", 0),
        "points_expired": counts.get("points_expired", 0),
        "redemptions": counts.get("redemptions", 0),
        "coupon_uses": counts.get("coupon_uses", 0),
        "topups": counts.get("topups", 0),
        "stored_value_payments": counts.get("stored_value_payments", 0),
        "seconds": round(elapsed, 1),
    }


def _sales_planner(
    specs: Sequence[MemberSpec],
    store_specs: Sequence[StoreSpec],
    *,
    seed: int,
    today: dt.date,
    months: int,
    return_rate: float,
    wallet_share: float = demo_sales.WALLET_SHARE,
    redeem_share: float = demo_sales.REDEEM_SHARE,
) -> Callable[[], demo_sales.SalesPlan]:
    """The sales plan under the rules the chain now runs: its member days draw customers,
    birthday discounts bring some in on the day, its expiry policy runs the expiry job. The
    rules and the catalogue are read now; the returned function only computes."""
    rules = config.pricing_rules(None)
    member_days = [r.schedule for r in rules if r.kind == "member_day"]
    products = demo_sales.catalogue()
    expiry_policy = config.program().expiry_policy

    def plan() -> demo_sales.SalesPlan:
        return demo_sales.plan_sales(
            specs,
            products,
            stores=store_specs,
            seed=seed,
            today=today,
            months=months,
            member_day=lambda day: any(matches(s, day) for s in member_days),
            birthday_deals=any(r.kind == "birthday" for r in rules),
            return_rate=return_rate,
            expiry_policy=expiry_policy,
            wallet_share=wallet_share,
            redeem_share=redeem_share,
        )

    return plan


# Stored value (S-1, S-2) where the rules loaded leave it unset: the policy's defaults follow the
# single-purpose prepaid card rules (named card ≤ 5 000 CNY, unregistered ≤ 1 000, bonus not
# refundable), with the bonus tiers chains commonly run (充500送20 …).
DEMO_TOPUP_TIERS = [
    ("充500送20", Decimal("500.00"), Decimal("20.00")),
    ("充1000送50", Decimal("1000.00"), Decimal("50.00")),
    ("充2000送120", Decimal("2000.00"), Decimal("120.00")),
]


def _wallet_settings() -> None:
    """The chain's stored-value settings for the demo: the policy saved with its defaults and
    the demo's bonus tiers, unless the loaded rules brought their own."""
    if not WalletPolicy.objects.exists():
        WalletPolicy.objects.create()
    if not TopupRule.objects.filter(active=True).exists():
        for name, min_amount, bonus in DEMO_TOPUP_TIERS:
            TopupRule.objects.create(name=name, min_amount=min_amount, bonus=bonus)


def member_fingerprint() -> str:
    """A hash of every member's generated attributes, independent of database ids, member
    numbers and encryption nonces: equal for two runs with the same seed."""
    rows = []
    members = Member.objects.select_related(
        "home_store", "enrolled_by", "zone", "referrer", "group", "household__holder"
    ).order_by("phone")
    for m in members:
        rows.append(
            [
                m.name,
                m.phone,
                m.gender,
                m.birthday.isoformat() if m.birthday else "",
                m.lunar_birthday,
                m.id_number,
                m.email,
                m.address,
                m.district,
                m.community,
                m.zone.name if m.zone else "",
                sorted(m.chronic_conditions),
                sorted(m.allergies),
                sorted(m.medical_history),
                sorted(m.health_interests),
                sorted(m.contact_channels),
                m.preferred_channel,
                m.acquisition_channel,
                m.heard_from,
                m.campaign_code,
                m.home_store.code,
                m.enrolled_by.username if m.enrolled_by else "",
                m.enrolled_at.isoformat(),
                m.referrer.phone if m.referrer else "",
                m.group.name if m.group else "",
                m.household.holder.phone if m.household else "",
                m.consent_marketing,
                m.consent_health,
                m.completeness,
            ]
        )
    payload = json.dumps(rows, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(payload).hexdigest()
