"""Store, staff and product imports: row-by-row through the services, upsert by code."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from carecard.catalog.importers import import_products
from carecard.catalog.models import Category, DrugClass, Ingredient, Product
from carecard.chain.importers import import_staff, import_stores
from carecard.chain.models import Region, Staff, Store, TradingZone
from carecard.core.models import AuditEntry
from tests.imports.helpers import write_csv, write_xlsx

STORE_HEADER = ["门店编码", "门店名称", "片区编码", "片区名称", "区县", "地址", "开业日期", "商圈"]


def test_stores_are_created_then_updated_by_code(db, tmp_path):
    assert not Store.objects.filter(code__in=["S001", "S002"]).exists()
    path = write_csv(
        tmp_path / "stores.csv",
        STORE_HEADER,
        [
            ["S001", "浦东一店", "PD", "浦东片区", "浦东新区", "张杨路1号", "2019-03-01", ""],
            [
                "S002",
                "浦东二店",
                "PD",
                "",
                "浦东新区",
                "",
                "2020/7/15",
                "陆家嘴:3200:陆家嘴/世纪大道；张江:1800:张江",
            ],
            ["S003", "", "PD", "", "", "", "", ""],
            ["S004", "坏日期", "PD", "", "", "", "2020-13-01", ""],
            ["S001", "重复", "PD", "", "", "", "", ""],
            ["S005", "坏商圈", "PD", "", "", "", "", "陆家嘴:很多"],
        ],
    )
    report = import_stores(path)
    assert (report.total, report.created, report.updated, report.rejected) == (6, 2, 0, 4)
    assert {e.row: e.column for e in report.errors} == {
        4: "门店名称",
        5: "开业日期",
        6: "门店编码",
        7: "商圈",
    }
    mine = Store.objects.filter(code__in=["S001", "S002", "S003", "S004", "S005"])
    assert set(mine.values_list("code", flat=True)) == {"S001", "S002"}
    s2 = Store.objects.get(code="S002")
    assert s2.opened_on == dt.date(2020, 7, 15)
    assert s2.region.name == "浦东片区"
    zones = {z.name: (z.households, z.keywords) for z in TradingZone.objects.filter(store=s2)}
    assert zones == {"陆家嘴": (3200, ["陆家嘴", "世纪大道"]), "张江": (1800, ["张江"])}
    again = write_csv(
        tmp_path / "again.xlsx.csv",
        ["store_code", "store_name", "region"],
        [["S002", "浦东二店(新)", "PD"]],
    )
    report = import_stores(again)
    assert (report.created, report.updated, report.rejected) == (0, 1, 0)
    s2.refresh_from_db()
    assert s2.name == "浦东二店(新)"
    assert s2.opened_on == dt.date(2020, 7, 15)  # absent column: untouched
    assert mine.count() == 2
    assert Region.objects.filter(code="PD").count() == 1
    assert AuditEntry.objects.filter(action="import", target="import:stores").count() == 2


@pytest.fixture
def two_stores(db, tmp_path):
    path = write_csv(
        tmp_path / "s.csv",
        ["门店编码", "门店名称", "片区编码"],
        [["S001", "一店", "PD"], ["S002", "二店", "PD"]],
    )
    assert import_stores(path).created == 2
    return Store.objects.get(code="S001"), Store.objects.get(code="S002")


def test_staff_import_creates_updates_and_generates_passwords(two_stores, tmp_path):
    s1, s2 = two_stores
    path = write_xlsx(
        tmp_path / "staff.xlsx",
        ["登录名", "姓名", "角色", "门店编码", "工号", "手机", "初始密码"],
        [
            ["wang", "王店员", "营业员", "S001", "E001", 13812345678, "Strong-Pass-2026"],
            ["li", "李药师", "pharmacist", "S002", "E002", "", ""],
            ["hq", "总部", "总部管理员", "", "", "", "Strong-Pass-2026"],
            ["bad1", "无门店", "店长", "", "", "", ""],
            ["bad2", "坏角色", "保安", "S001", "", "", ""],
            ["bad3", "弱密码", "营业员", "S001", "", "", "123"],
            ["bad4", "重复工号", "营业员", "S001", "E001", "", ""],
            ["bad5", "坏手机", "营业员", "S009", "", "12", ""],
        ],
    )
    report = import_staff(path)
    assert (report.created, report.rejected) == (3, 5)
    by_row = {}
    for e in report.errors:
        by_row.setdefault(e.row, set()).add(e.column)
    assert by_row == {
        5: {"门店编码"},
        6: {"角色"},
        7: {"初始密码"},
        8: {"工号"},
        9: {"门店编码", "手机"},
    }
    wang = Staff.objects.get(username="wang")
    assert (wang.role, wang.home_store_id, wang.mobile) == ("clerk", s1.pk, "13812345678")
    assert wang.check_password("Strong-Pass-2026")
    assert [(r, u) for r, u, _p in report.generated_passwords] == [(3, "li")]
    li = Staff.objects.get(username="li")
    assert li.check_password(report.generated_passwords[0][2])
    assert Staff.objects.get(username="hq").home_store_id is None
    assert not Staff.objects.filter(username__startswith="bad").exists()
    # Re-import: role and store change, the password does not.
    again = write_csv(
        tmp_path / "again.csv",
        ["username", "role", "store", "password"],
        [["wang", "store_manager", "S002", "Other-Pass-2026"]],
    )
    report = import_staff(again)
    assert (report.created, report.updated, report.rejected) == (0, 1, 0)
    wang.refresh_from_db()
    assert (wang.role, wang.home_store_id) == ("store_manager", s2.pk)
    assert wang.check_password("Strong-Pass-2026")
    assert AuditEntry.objects.filter(action="role_change", target=f"staff:{wang.pk}").exists()


PRODUCT_HEADER = [
    "商品编码",
    "条码",
    "品名",
    "规格",
    "分类编码",
    "分类名称",
    "类别",
    "零售价",
    "会员价",
    "特价",
    "医保",
    "成分",
    "每盒可用天数",
]


def test_products_import_with_categories_ingredients_and_flags(db, tmp_path):
    DrugClass.objects.create(code="CCB", name="钙通道阻滞剂")
    path = write_csv(
        tmp_path / "p.csv",
        PRODUCT_HEADER + ["药物类别"],
        [
            [
                "P001",
                "6901234567890",
                "苯磺酸氨氯地平片",
                "5mg*28片",
                "RX-CV",
                "心血管处方药",
                "处方药",
                "36.50",
                "32",
                "否",
                "是",
                "氨氯地平",
                "28",
                "CCB",
            ],
            [
                "P002",
                "",
                "维生素C片",
                "100片",
                "RX-CV",
                "",
                "乙类OTC",
                "9.9",
                "",
                "是",
                "",
                "",
                "",
                "",
            ],
            ["P003", "", "无价格", "", "RX-CV", "", "", "", "", "", "", "", "", ""],
            ["P004", "", "会员价高", "", "RX-CV", "", "", "10", "12", "", "", "", "", ""],
            ["P005", "", "新分类无名", "", "NEW", "", "", "10", "", "", "", "", "", ""],
            ["P006", "", "坏标志", "", "RX-CV", "", "", "10", "", "也许", "", "", "", ""],
            ["P007", "", "坏类别", "", "RX-CV", "", "", "10", "", "", "", "", "", "ZZZ"],
            ["P008", "", "三位小数", "", "RX-CV", "", "", "10.005", "", "", "", "", "", ""],
        ],
        encoding="gbk",
    )
    report = import_products(path)
    assert (report.created, report.rejected) == (2, 6)
    assert {e.row: e.column for e in report.errors} == {
        4: "零售价",
        5: "会员价",
        6: "分类编码",
        7: "特价",
        8: "药物类别",
        9: "零售价",
    }
    p1 = Product.objects.get(sku="P001")
    assert (p1.shelf_price, p1.member_price, p1.item_class) == (
        Decimal("36.50"),
        Decimal("32.00"),
        "rx",
    )
    assert (p1.is_insurance_listed, p1.is_special_price, p1.days_supply) == (True, False, 28)
    assert list(p1.ingredients.values_list("name", flat=True)) == ["氨氯地平"]
    assert list(p1.drug_classes.values_list("code", flat=True)) == ["CCB"]
    assert Category.objects.get(code="RX-CV").name == "心血管处方药"
    assert Product.objects.get(sku="P002").item_class == "otc_b"
    assert not Product.objects.filter(sku__in=["P003", "P004", "P005", "P006", "P007"]).exists()
    # Re-import by SKU updates the price and ingredients; no duplicate.
    again = write_csv(
        tmp_path / "again.csv",
        ["sku", "name", "price", "ingredients"],
        [["P001", "苯磺酸氨氯地平片", "35", "氨氯地平;辅料A"]],
    )
    report = import_products(again)
    assert (report.created, report.updated, report.rejected) == (0, 1, 0)
    p1.refresh_from_db()
    assert p1.shelf_price == Decimal("35.00")
    assert p1.member_price == Decimal("32.00")
    assert sorted(p1.ingredients.values_list("name", flat=True)) == ["氨氯地平", "辅料A"]
    assert Product.objects.filter(sku__startswith="P00").count() == 2
    assert Ingredient.objects.filter(name__in=["氨氯地平", "辅料A"]).count() == 2
