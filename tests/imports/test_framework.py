"""Readers, header mapping, value parsers, the report file and the CLI entry point."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal

import pytest

from carecard.core import importing
from carecard.core.importing import (
    Column,
    ImportFailed,
    parse_bool,
    parse_date,
    parse_datetime,
    parse_decimal,
    read_records,
    run_import_cli,
    split_list,
)
from carecard.members.models import Member
from tests.factories import unique_phone
from tests.imports.helpers import write_csv, write_xlsx

COLUMNS = (
    Column("code", "编码", ("code", "Store Code"), required=True),
    Column("name", "名称", ("name",)),
)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_csv_encodings_are_detected(tmp_path, encoding):
    path = write_csv(tmp_path / "f.csv", ["编码", "名称"], [["A1", "浦东一店"]], encoding=encoding)
    hmap, records = read_records(path, COLUMNS)
    assert list(records) == [(2, {"code": "A1", "name": "浦东一店"})]
    assert hmap.column_name("name") == "名称"


def test_headers_match_by_alias_case_spaces_and_star(tmp_path):
    path = write_csv(tmp_path / "f.csv", [" store_code* ", "NAME", "备注"], [["A1", "x"], ["", ""]])
    hmap, records = read_records(path, COLUMNS)
    assert list(records) == [(2, {"code": "A1", "name": "x"})]  # the blank row is skipped
    assert hmap.unknown == ["备注"]
    assert hmap.column_name("code") == "store_code*"


def test_bad_headers_refuse_the_file(tmp_path):
    missing = write_csv(tmp_path / "m.csv", ["名称"], [["x"]])
    with pytest.raises(ImportFailed) as info:
        read_records(missing, COLUMNS)
    assert [(e.row, e.column) for e in info.value.row_errors] == [(1, "编码")]
    twice = write_csv(tmp_path / "t.csv", ["编码", "code"], [["x", "y"]])
    with pytest.raises(ImportFailed) as info:
        read_records(twice, COLUMNS)
    assert info.value.row_errors[0].column == "code"
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(ImportFailed, match="xlsx"):
        read_records(tmp_path / "old.xls", COLUMNS)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ImportFailed, match="空"):
        read_records(tmp_path / "empty.csv", COLUMNS)


def test_xlsx_cells_become_text(tmp_path):
    path = write_xlsx(
        tmp_path / "f.xlsx",
        ["编码", "名称"],
        [[13812345678, dt.datetime(2024, 3, 1)], [1.5, True]],  # noqa: DTZ001
    )
    _hmap, records = read_records(path, COLUMNS)
    assert [r for _n, r in records] == [
        {"code": "13812345678", "name": "2024-03-01"},
        {"code": "1.5", "name": "是"},
    ]


def test_value_parsers():
    assert parse_bool("是") is True
    assert parse_bool("N") is False
    assert parse_bool("", default=True) is True
    with pytest.raises(ValueError, match="是/否"):
        parse_bool("也许")
    assert parse_date("2024/3/1") == parse_date("20240301") == dt.date(2024, 3, 1)
    assert parse_date("2024年3月1日") == dt.date(2024, 3, 1)
    with pytest.raises(ValueError, match="不存在"):
        parse_date("2024-02-30")
    at = parse_datetime("2024-03-01 10:30")
    assert (at.hour, at.minute, str(at.tzinfo)) == (10, 30, "Asia/Shanghai")
    assert parse_datetime("2024-03-01T08:00:00").hour == 8
    assert parse_decimal("¥1,234.5") == Decimal("1234.50")
    with pytest.raises(ValueError, match="小数"):
        parse_decimal("1.005")
    with pytest.raises(ValueError, match="小于"):
        parse_decimal("-1")
    assert split_list("青霉素、磺胺; 头孢，青霉素") == ["青霉素", "磺胺", "头孢"]


def test_cli_writes_the_report_and_exit_codes(db, tmp_path, capsys):
    from carecard.chain import services as chain_services

    chain_services.store_upsert(
        code="S-CLI", name="店", region=chain_services.region_upsert(code="R", name="R")
    )
    path = write_csv(
        tmp_path / "members.csv",
        ["姓名", "手机号", "门店编码", "同意会员章程"],
        [["张三", unique_phone(), "S-CLI", "是"], ["李四", "123", "S-CLI", "是"]],
    )
    report = tmp_path / "rejects.csv"
    assert run_import_cli(kind="members", path=path, report=report) == 1
    out = capsys.readouterr().out
    assert "新增 1" in out
    assert "拒绝 1" in out
    with report.open(encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["行号", "列", "原因", "编码", "错误代码"]
    assert rows[1][:3] == ["3", "手机号", "手机号格式不正确"]
    assert Member.objects.filter(name="张三").count() == 1
    bad = write_csv(tmp_path / "bad.csv", ["姓名"], [["王五"]])
    assert run_import_cli(kind="members", path=bad, report=report) == 2
    assert "同意会员章程" in capsys.readouterr().err
    assert not Member.objects.filter(name="王五").exists()
    with pytest.raises(ImportFailed):
        importing.importer_for("sales")
