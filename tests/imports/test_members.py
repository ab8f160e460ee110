"""Member import (I-2): the standard path on every database, the COPY path on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from carecard.chain import services as chain_services
from carecard.core.crypto import blind_index
from carecard.core.importing import ImportFailed
from carecard.members import importers
from carecard.members import services as member_services
from carecard.members.importers import import_members
from carecard.members.models import Card, Consent, Member, MemberSearchKey
from tests.factories import make_member, unique_phone, valid_id
from tests.imports.helpers import is_postgres, write_csv, write_xlsx

HEADER = [
    "外部编码",
    "姓名",
    "手机号",
    "性别",
    "出生日期",
    "身份证号",
    "地址",
    "省",
    "市",
    "区县",
    "药物过敏",
    "慢性病",
    "健康兴趣",
    "联系渠道",
    "首选渠道",
    "门店编码",
    "入会时间",
    "同意会员章程",
    "同意营销信息",
    "同意健康信息处理",
]


def row(code: str, name: str = "李四", phone: str = "", **over: str) -> list[str]:
    values = {
        "外部编码": code,
        "姓名": name,
        "手机号": phone or unique_phone(),
        "性别": "女",
        "出生日期": "1980-05-06",
        "身份证号": "",
        "地址": "",
        "省": "",
        "市": "",
        "区县": "",
        "药物过敏": "",
        "慢性病": "",
        "健康兴趣": "睡眠",
        "联系渠道": "短信",
        "首选渠道": "短信",
        "门店编码": over.pop("store", "S-IMP"),
        "入会时间": "2024-03-01 10:30",
        "同意会员章程": "是",
        "同意营销信息": "否",
        "同意健康信息处理": "否",
    }
    values.update(over)
    return [values[h] for h in HEADER]


def counts() -> tuple[int, int, int, int]:
    return (
        Member.objects.count(),
        Card.objects.count(),
        Consent.objects.count(),
        MemberSearchKey.objects.count(),
    )


def run(path: Path, *, bulk: bool, **kwargs):
    """Import; on SQLite the bulk path must refuse clearly and write nothing (returns None)."""
    if bulk and not is_postgres():
        before = counts()
        with pytest.raises(ImportFailed, match="PostgreSQL"):
            import_members(path, bulk=True, **kwargs)
        assert counts() == before
        return None
    return import_members(path, bulk=bulk, **kwargs)


@pytest.fixture
def imp_store(db: None):
    return chain_services.store_upsert(
        code="S-IMP",
        name="导入门店",
        region=chain_services.region_upsert(code="SH", name="上海片区"),
        province="上海市",
        city="上海市",
        district="浦东新区",
    )


@pytest.fixture(params=[False, True], ids=["standard", "bulk"])
def bulk(request: pytest.FixtureRequest) -> bool:
    return request.param


def test_imported_member_has_the_shape_of_an_enrolled_one(imp_store, tmp_path, bulk):
    zone = chain_services.zone_upsert(
        store=imp_store, name="张杨商圈", district="浦东新区", keywords=["张杨路"], households=900
    )
    at = timezone.make_aware(dt.datetime(2024, 3, 1, 10, 30))  # noqa: DTZ001
    common = {
        "name": "曾小贤",
        "gender": "M",
        "address": "上海市浦东新区张杨路100弄3号",
        "province": "上海市",
        "city": "上海市",
        "district": "浦东新区",
        "allergies": ["青霉素", "磺胺"],
        "chronic_conditions": ["hypertension"],
        "health_interests": ["sleep", "diabetes"],
        "contact_channels": ["sms"],
        "preferred_channel": "wechat",
        "acquisition_channel": "community",
        "consent_terms": True,
        "consent_marketing": True,
        "consent_health_data": True,
    }
    enrolled = member_services.member_enrol(
        actor=None,
        store=imp_store,
        data={**common, "phone": unique_phone(), "id_number": valid_id(seq=101)},
        channel="import",
        enrolled_at=at,
        external_code="ENROLLED",
    )
    phone, id_number = unique_phone(), valid_id(seq=203)
    path = write_csv(
        tmp_path / "m.csv",
        HEADER + ["开发渠道"],
        [
            row(
                "ERP-1",
                name="曾小贤",
                phone=phone,
                性别="男",
                出生日期="",
                身份证号=id_number,
                地址=common["address"],
                省="上海市",
                市="上海市",
                区县="浦东新区",
                药物过敏="青霉素、磺胺",
                慢性病="高血压",
                健康兴趣="睡眠;糖尿病",
                联系渠道="短信",
                首选渠道="微信",
                同意营销信息="是",
                同意健康信息处理="是",
            )
            + ["社区活动"]
        ],
    )
    report = run(path, bulk=bulk)
    if report is None:
        return
    assert (report.total, report.created, report.updated, report.rejected) == (1, 1, 0, 0)
    imported = Member.objects.get(external_code="ERP-1")
    skip = {"id", "member_no", "referral_code", "external_code", "phone", "phone_tail"}
    skip |= {"id_number", "id_number_index", "updated_at"}
    for f in Member._meta.concrete_fields:
        if f.attname not in skip:
            assert getattr(imported, f.attname) == getattr(enrolled, f.attname), f.attname
    assert imported.zone_id == zone.pk
    assert imported.birthday == dt.date(1980, 5, 6)  # from the ID number, as at enrolment
    assert (imported.phone, imported.phone_tail) == (phone, phone[-4:])
    assert imported.id_number == id_number
    assert imported.id_number_index == blind_index(id_number)
    assert len(imported.member_no) == 12
    assert imported.member_no.isdigit()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id_number, allergies, chronic_conditions, medical_history "
            "FROM members_member WHERE id IN (%s, %s)",
            [imported.pk, enrolled.pk],
        )
        for id_raw, allergies_raw, chronic_raw, history_raw in cursor.fetchall():
            assert id_raw.startswith("v1:")
            assert allergies_raw.startswith("v1:")
            assert chronic_raw.startswith("v1:")
            assert history_raw == ""

    def cards(m: Member) -> list[tuple]:
        return list(
            m.cards.values_list("kind", "status", "issued_store_id", "issued_at", "fee", "number")
        )

    assert cards(imported) == [("virtual", "active", imp_store.pk, at, 0, "V" + imported.member_no)]
    assert [c[:5] for c in cards(imported)] == [c[:5] for c in cards(enrolled)]

    def consents(m: Member) -> list[tuple]:
        return sorted(m.consents.values_list("purpose", "granted", "text_version", "channel", "at"))

    assert consents(imported) == consents(enrolled)
    assert len(consents(imported)) == 3
    keys = set(imported.search_keys.values_list("key", flat=True))
    assert keys == set(enrolled.search_keys.values_list("key", flat=True))
    assert {"zxx", "cxx", "zengxiaoxian"} <= keys


def test_bad_rows_are_reported_and_not_written_good_rows_are(imp_store, tmp_path, bulk):
    existing = make_member(imp_store)
    good_phone = unique_phone()
    path = write_csv(
        tmp_path / "m.csv",
        HEADER,
        [
            row("A1", phone=good_phone),
            row("A2", phone="12345"),
            row("A3", 身份证号="310115198005061234"),
            row("A4", store="NOPE"),
            row("A5", 同意会员章程="否"),
            row("A6", phone=existing.phone),
            row("A7", phone=good_phone),
            row("A8", 药物过敏="青霉素"),
            row("A9", 出生日期="1980-02-30"),
            row("A10", 同意营销信息="也许"),
            row("A11", 健康兴趣="钓鱼"),
        ],
    )
    before = counts()
    report = run(path, bulk=bulk)
    if report is None:
        return
    assert (report.total, report.created, report.rejected) == (11, 1, 10)
    by_row = {e.row: (e.column, e.ref) for e in report.errors}
    assert by_row == {
        3: ("手机号", "A2"),
        4: ("身份证号", "A3"),
        5: ("门店编码", "A4"),
        6: ("同意会员章程", "A5"),
        7: ("手机号", "A6"),
        8: ("手机号", "A7"),
        9: ("同意健康信息处理", "A8"),
        10: ("出生日期", "A9"),
        11: ("同意营销信息", "A10"),
        12: ("健康兴趣", "A11"),
    }
    reasons = {e.row: e.reason for e in report.errors}
    assert reasons[3] == "手机号格式不正确"
    assert reasons[4] == "身份证号校验位不正确"
    assert existing.member_no in reasons[7]
    assert "第 2 行" in reasons[8]
    assert "钓鱼" in reasons[12]
    assert Member.objects.filter(external_code__startswith="A").count() == 1
    assert Member.objects.get(external_code="A1").phone == good_phone
    m_before, c_before, consent_before, k_before = before
    assert counts()[:3] == (m_before + 1, c_before + 1, consent_before + 3)


def test_reimport_updates_by_external_code_and_never_duplicates(imp_store, tmp_path, bulk):
    phone = unique_phone()
    first = write_csv(tmp_path / "1.csv", HEADER, [row("X1", name="王五", phone=phone)])
    report = run(first, bulk=bulk)
    if report is None:
        return
    assert (report.created, report.updated) == (1, 0)
    member = Member.objects.get(external_code="X1")
    card = member.cards.get()
    new_phone = unique_phone()
    second = write_csv(
        tmp_path / "2.csv",
        HEADER,
        [row("X1", name="赵六", phone=new_phone, 同意营销信息="是", 健康兴趣="减肥瘦身")],
    )
    report = run(second, bulk=bulk)
    assert (report.total, report.created, report.updated, report.rejected) == (1, 0, 1, 0)
    assert Member.objects.filter(external_code="X1").count() == 1
    member.refresh_from_db()
    assert (member.name, member.phone, member.phone_tail) == ("赵六", new_phone, new_phone[-4:])
    assert member.health_interests == ["weight_loss"]
    assert member.consent_marketing is True
    assert list(member.cards.all()) == [card]  # same virtual card, same member number
    keys = set(member.search_keys.values_list("key", flat=True))
    assert "zl" in keys
    assert "ww" not in keys
    marketing = member.consents.filter(purpose="marketing").order_by("at", "id")
    assert [c.granted for c in marketing] == [False, True]
    # A file with fewer columns leaves the other fields alone.
    third = write_csv(
        tmp_path / "3.csv",
        ["外部编码", "姓名", "手机号", "同意会员章程"],
        [["X1", "赵六", new_phone, "是"]],
    )
    report = run(third, bulk=bulk)
    assert (report.updated, report.rejected) == (1, 0)
    member.refresh_from_db()
    assert member.health_interests == ["weight_loss"]
    assert member.consent_marketing is True


def test_duplicates_within_the_file_name_the_row(imp_store, tmp_path, bulk):
    phone = unique_phone()
    id_number = valid_id(seq=321)
    path = write_csv(
        tmp_path / "m.csv",
        HEADER,
        [
            row("D1", phone=phone),
            row("D1"),
            row("D3", phone=phone),
            row("D4", 身份证号=id_number, 出生日期="", 性别=""),
            row("D5", 身份证号=id_number, 出生日期="", 性别=""),
        ],
    )
    report = run(path, bulk=bulk, **({"batch_size": 2} if not bulk else {}))
    if report is None:
        return
    assert (report.created, report.rejected) == (2, 3)
    by_row = {e.row: e.column for e in report.errors}
    assert by_row == {3: "外部编码", 4: "手机号", 6: "身份证号"}
    assert Member.objects.filter(external_code__in=["D1", "D3", "D4", "D5"]).count() == 2


def test_bulk_path_streams_through_worker_processes(imp_store, tmp_path, monkeypatch):
    rows = [row(f"W{i}", name=f"张{i}") for i in range(40)] + [row("BAD", phone="1")]
    path = write_xlsx(tmp_path / "m.xlsx", HEADER, rows)
    if not is_postgres():
        with pytest.raises(ImportFailed, match="PostgreSQL"):
            import_members(path, bulk=True, workers=2)
        assert not Member.objects.filter(external_code__startswith="W").exists()
        return
    monkeypatch.setattr(importers._BulkImport, "CHUNK", 7)
    report = import_members(path, bulk=True, workers=2)
    assert (report.total, report.created, report.rejected) == (41, 40, 1)
    assert report.errors[0].row == 42
    assert report.errors[0].column == "手机号"
    members = Member.objects.filter(external_code__startswith="W")
    assert members.count() == 40
    assert len(set(members.values_list("member_no", flat=True))) == 40
    assert Card.objects.filter(member__in=members, kind="virtual").count() == 40
    assert Consent.objects.filter(member__in=members).count() == 120


def test_card_numbers_are_issued_and_checked(imp_store, tmp_path, bulk):
    other = make_member(imp_store)
    member_services.card_issue(actor=None, member=other, number="C900")
    header = HEADER + ["卡号"]
    path = write_csv(
        tmp_path / "m.csv",
        header,
        [row("K1") + ["C100"], row("K2") + ["C900"], row("K3") + ["C-1"], row("K4") + ["C100"]],
    )
    report = run(path, bulk=bulk)
    if report is None:
        return
    assert (report.created, report.rejected) == (1, 3)
    assert {e.row: e.column for e in report.errors} == {3: "卡号", 4: "卡号", 5: "卡号"}
    member = Member.objects.get(external_code="K1")
    assert sorted(member.cards.values_list("kind", "number")) == [
        ("physical", "C100"),
        ("virtual", "V" + member.member_no),
    ]


def test_missing_required_column_refuses_the_file(imp_store, tmp_path, bulk):
    path = write_csv(tmp_path / "m.csv", ["姓名", "手机号"], [["李四", unique_phone()]])
    before = counts()
    with pytest.raises(ImportFailed) as info:
        import_members(path, bulk=bulk and is_postgres())
    assert [(e.row, e.column) for e in info.value.row_errors] == [(1, "同意会员章程")]
    assert counts() == before


def test_default_store_and_staff_attribution(imp_store, tmp_path):
    clerk = chain_services.staff_create(
        actor=None,
        username="clerk-imp",
        password="x-Word-2026-long",
        role="clerk",
        home_store=imp_store,
        staff_code="E007",
        check_password=False,
    )
    path = write_csv(
        tmp_path / "m.csv",
        ["姓名", "手机号", "开卡员工", "同意会员章程"],
        [["钱七", unique_phone(), "E007", "是"], ["孙八", unique_phone(), "E999", "是"]],
    )
    report = import_members(path, default_store=imp_store)
    assert (report.created, report.rejected) == (1, 1)
    assert report.errors[0].column == "开卡员工"
    member = Member.objects.get(name="钱七")
    assert (member.home_store_id, member.enrolled_by_id) == (imp_store.pk, clerk.pk)
    assert member.acquisition_channel == "import"
    assert member.external_code is None


def test_validate_members_is_a_dry_run(imp_store, tmp_path):
    path = write_csv(
        tmp_path / "m.csv",
        HEADER,
        [row("V1"), row("V2", phone="12"), row("V3", 身份证号="310115198005061234")],
    )
    before = counts()
    report = importers.validate_members(path, workers=0)
    assert (report.total, report.timings["valid_rows"], report.rejected) == (3, 1, 2)
    assert [(e.row, e.column) for e in report.errors] == [(3, "手机号"), (4, "身份证号")]
    assert counts() == before


def test_a_concurrent_enrolment_rejects_only_its_row(imp_store, tmp_path, monkeypatch):
    phones = [unique_phone(), unique_phone(), unique_phone()]
    path = write_csv(
        tmp_path / "m.csv", HEADER, [row(f"R{i}", phone=p) for i, p in enumerate(phones)]
    )
    decide = importers._StandardImport._decide
    raced: list[int] = []

    def racing_decide(self, items):
        result = decide(self, items)
        if not raced:  # a clerk enrols the second row's phone between the checks and the insert
            raced.append(make_member(imp_store, phone=phones[1]).pk)
        return result

    monkeypatch.setattr(importers._StandardImport, "_decide", racing_decide)
    report = import_members(path)
    assert (report.created, report.rejected) == (2, 1)
    assert report.errors[0].row == 3
    assert report.errors[0].column == "手机号"
    assert set(
        Member.objects.filter(external_code__startswith="R").values_list("phone", flat=True)
    ) == {
        phones[0],
        phones[2],
    }
    assert Member.objects.filter(phone=phones[1]).count() == 1


def test_text_with_tabs_backslashes_and_newlines_round_trips(imp_store, tmp_path, bulk):
    address = "上海市浦东新区\\张杨路\t100号\n3楼"
    path = write_csv(
        tmp_path / "m.csv",
        HEADER,
        [row("T1", name="O'Neil", 地址=address, 区县="浦东新区", 省="上海市")],
    )
    report = run(path, bulk=bulk)
    if report is None:
        return
    assert (report.created, report.rejected) == (1, 0)
    member = Member.objects.get(external_code="T1")
    assert (member.address, member.name) == (address, "O'Neil")


def test_empty_store_and_time_cells_keep_the_members_values(imp_store, tmp_path, bulk):
    phone = unique_phone()
    first = write_csv(tmp_path / "1.csv", HEADER, [row("E1", phone=phone)])
    if run(first, bulk=bulk) is None:
        return
    member = Member.objects.get(external_code="E1")
    second = write_csv(
        tmp_path / "2.csv",
        HEADER,
        [row("E1", name="新名字", phone=phone, store="", 入会时间=""), row("E2", store="")],
    )
    report = run(second, bulk=bulk)
    assert (report.updated, report.created, report.rejected) == (1, 0, 1)
    assert (report.errors[0].row, report.errors[0].column) == (3, "门店编码")
    updated = Member.objects.get(pk=member.pk)
    assert updated.name == "新名字"
    assert (updated.home_store_id, updated.enrolled_at) == (imp_store.pk, member.enrolled_at)
    assert not Member.objects.filter(external_code="E2").exists()
