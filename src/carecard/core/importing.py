"""Import framework (I-2): file readers, header mapping, value parsers and the import report.

A file is read as a stream of rows: CSV (UTF-8, UTF-8 with BOM, or GBK/GB18030 as written by
Chinese Excel) or XLSX (openpyxl in read-only mode, one row at a time). The first row is the
header; each kind declares its columns with a Chinese label and the other names it accepts
(English, common ERP spellings), so a file exported from another system imports without
renaming columns.

Every rejected row is reported with its row number (as Excel shows it: the header is row 1),
the column as written in the file, and the reason in Chinese. Nothing of a rejected row is
written; a file-level problem (unknown format, missing required column) raises ``ImportFailed``
before anything is written.

The importers live in the apps (``chain.importers``, ``catalog.importers``,
``members.importers``); ``run_import_cli`` dispatches to them by kind, so this kernel module
imports no app.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import importlib
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from carecard.core.errors import DomainError

CSV_ENCODINGS = ("utf-8-sig", "gb18030")  # gb18030 is a superset of GBK and GB2312
MAX_REPORTED_ERRORS = 1_000_000  # a report for a hopeless file stays bounded; counts stay exact

TRUE_WORDS = frozenset({"1", "true", "yes", "y", "t", "是", "同意", "有", "√", "✓", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "n", "f", "否", "不同意", "无", "×", "✗", "off"})
LIST_SPLIT_RE = re.compile(r"[、;；,，|\n]+")
_HEADER_STRIP_RE = re.compile(r"[\s_\-./()（）\[\]【】*:：]+")


class ImportFailed(DomainError):
    """The file cannot be imported at all (format, encoding, header). Nothing was written."""

    def __init__(self, message: str, *, errors: list[RowError] | None = None) -> None:
        super().__init__(code="import_failed", message=message, status=422)
        self.row_errors = errors or []


@dataclass(frozen=True)
class Column:
    """A column an importer understands: its key, Chinese label and other accepted headers."""

    key: str
    label: str
    aliases: tuple[str, ...] = ()
    required: bool = False
    help: str = ""

    def names(self) -> tuple[str, ...]:
        return (self.label, self.key, *self.aliases)


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    reason: str
    code: str = ""
    ref: str = ""  # the row's external code / SKU / username, to find it in the source system


@dataclass
class ImportReport:
    """The outcome of one import: counts and every rejected row."""

    kind: str
    source: str
    total: int = 0
    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rejected_rows: set[int] = field(default_factory=set)
    started: float = field(default_factory=time.perf_counter)
    elapsed: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    # Staff import: (row, login, password) of accounts created with a generated password.
    generated_passwords: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.rejected_rows)

    @property
    def ok(self) -> bool:
        return not self.rejected_rows

    @property
    def rows_per_second(self) -> float:
        return self.total / self.elapsed if self.elapsed else 0.0

    def reject(self, row: int, column: str, reason: str, *, code: str = "", ref: str = "") -> None:
        self.rejected_rows.add(row)
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(RowError(row, column, str(reason), code, ref))

    def errors_for(self, row: int) -> list[RowError]:
        return [e for e in self.errors if e.row == row]

    def finish(self) -> ImportReport:
        self.elapsed = time.perf_counter() - self.started
        self.errors.sort(key=lambda e: e.row)
        return self

    def summary(self) -> str:
        text = _(
            "%(kind)s 导入：共 %(total)d 行，新增 %(created)d，更新 %(updated)d，"
            "拒绝 %(rejected)d（%(secs).1f 秒，%(rate).0f 行/秒）"
        ) % {
            "kind": self.kind,
            "total": self.total,
            "created": self.created,
            "updated": self.updated,
            "rejected": self.rejected,
            "secs": self.elapsed,
            "rate": self.rows_per_second,
        }
        return text

    def write_csv(self, path: Path) -> None:
        """Rejected rows as CSV (UTF-8 with BOM so that Excel shows the Chinese correctly)."""
        with path.open("w", encoding="utf-8-sig", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["行号", "列", "原因", "编码", "错误代码"])
            for e in self.errors:
                writer.writerow([e.row, e.column, e.reason, e.ref, e.code])

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "total": self.total,
            "created": self.created,
            "updated": self.updated,
            "rejected": self.rejected,
            "elapsed": round(self.elapsed, 3),
            "errors": [e.__dict__ for e in self.errors[:100]],
        }


# --- header mapping ------------------------------------------------------------------------


def normalize_header(text: str) -> str:
    """Case, spaces, punctuation and a trailing required-marker (*) do not matter."""
    return _HEADER_STRIP_RE.sub("", str(text or "")).lower()


@dataclass
class HeaderMap:
    """Which file column holds which key, and the header text to name it in the report."""

    index: dict[str, int]
    header: list[str]
    labels: dict[str, str]
    unknown: list[str]

    def has(self, key: str) -> bool:
        return key in self.index

    def column_name(self, key: str) -> str:
        """The column as written in the file, or the canonical label if the file lacks it."""
        return self.labels.get(key, key)

    def record(self, values: Sequence[Any]) -> dict[str, str]:
        n = len(values)
        out: dict[str, str] = {}
        for k, i in self.index.items():
            v = values[i] if i < n else ""
            out[k] = v.strip() if type(v) is str else cell_text(v)  # CSV cells: str already
        return out


def map_header(header: Sequence[Any], columns: Sequence[Column]) -> HeaderMap:
    lookup: dict[str, Column] = {}
    for col in columns:
        for name in col.names():
            lookup.setdefault(normalize_header(name), col)
    index: dict[str, int] = {}
    labels = {c.key: c.label for c in columns}
    unknown: list[str] = []
    errors: list[RowError] = []
    texts = [cell_text(h) for h in header]
    for i, text in enumerate(texts):
        if not text:
            continue
        col = lookup.get(normalize_header(text))
        if col is None:
            unknown.append(text)
        elif col.key in index:
            errors.append(
                RowError(
                    1,
                    text,
                    _("与第 %(n)d 列「%(other)s」是同一字段，请删除其中一列")
                    % {"n": index[col.key] + 1, "other": texts[index[col.key]]},
                    "duplicate_column",
                )
            )
        else:
            index[col.key] = i
            labels[col.key] = text
    for col in columns:
        if col.required and col.key not in index:
            errors.append(
                RowError(
                    1,
                    col.label,
                    _("缺少必需的列「%(label)s」（也可写作：%(aliases)s）")
                    % {"label": col.label, "aliases": " / ".join((col.key, *col.aliases))},
                    "missing_column",
                )
            )
    if errors:
        raise ImportFailed(_("表头不符合要求，未导入任何数据"), errors=errors)
    return HeaderMap(index=index, header=texts, labels=labels, unknown=unknown)


# --- readers -------------------------------------------------------------------------------


def cell_text(value: Any) -> str:
    """A cell as text: Excel numbers without a spurious ``.0``, dates in ISO form."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value).strip()


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) when the whole file decodes as UTF-8, else GB18030 (GBK)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as fh:
        try:
            while chunk := fh.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "gb18030"
    return "utf-8-sig"


def _csv_rows(path: Path) -> Iterator[list[str]]:
    encoding = detect_encoding(path)
    with path.open("r", encoding=encoding, newline="") as fh:
        sample = fh.read(64 * 1024)
        fh.seek(0)
        delimiter = ","
        first_line = sample.split("\n", 1)[0]
        if first_line.count("\t") > first_line.count(","):
            delimiter = "\t"
        try:
            yield from csv.reader(fh, delimiter=delimiter)
        except UnicodeDecodeError as exc:
            raise ImportFailed(_("文件编码无法识别：请另存为 UTF-8 或 GBK 编码的 CSV")) from exc


def _xlsx_rows(path: Path) -> Iterator[Sequence[Any]]:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise ImportFailed(_("无法读取 Excel 文件：%(e)s") % {"e": exc}) from exc
    try:
        ws = wb.worksheets[0]
        yield from ws.iter_rows(values_only=True)
    finally:
        wb.close()


def read_table(path: Path) -> Iterator[Sequence[Any]]:
    """Rows of the first sheet / the CSV, header included, streamed."""
    path = Path(path)
    if not path.exists():
        raise ImportFailed(_("文件不存在：%(p)s") % {"p": path})
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _xlsx_rows(path)
    if suffix in (".csv", ".txt", ".tsv"):
        return _csv_rows(path)
    if suffix == ".xls":
        raise ImportFailed(_("不支持旧版 .xls 格式，请在 Excel 中另存为 .xlsx 或 CSV"))
    raise ImportFailed(_("不支持的文件类型 %(s)s：请使用 CSV 或 XLSX") % {"s": suffix or "?"})


def _open(path: Path, columns: Sequence[Column]) -> tuple[HeaderMap, int, Iterator[Any]]:
    """The header map, the header's row number and the rows after it."""
    rows = iter(read_table(path))
    for header_row, values in enumerate(rows, start=1):
        if any(cell_text(v) for v in values):
            return map_header(values, columns), header_row, rows
    raise ImportFailed(_("文件是空的"))


def read_records(
    path: Path, columns: Sequence[Column]
) -> tuple[HeaderMap, Iterator[tuple[int, dict[str, str]]]]:
    """The header map and a stream of (row number, {key: text}); blank rows are skipped."""
    hmap, header_row, rows = _open(path, columns)

    def records() -> Iterator[tuple[int, dict[str, str]]]:
        for row_no, values in enumerate(rows, start=header_row + 1):
            record = hmap.record(values)
            if any(record.values()):
                yield row_no, record

    return hmap, records()


def read_raw(path: Path, columns: Sequence[Column]) -> tuple[HeaderMap, Iterator[list[Any]]]:
    """Like ``read_records`` but yields ``[row_no, cell, cell, …]`` lists in file order —
    cheap to send to worker processes, which build the records themselves."""
    hmap, header_row, rows = _open(path, columns)

    def raw() -> Iterator[list[Any]]:
        for row_no, values in enumerate(rows, start=header_row + 1):
            yield [row_no, *values]

    return hmap, raw()


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- value parsers (raise ValueError with a Chinese message) ---------------------------------


def parse_bool(text: str, *, default: bool | None = None) -> bool:
    value = text.strip().lower()
    if not value:
        if default is None:
            raise ValueError(_("请填写 是/否"))
        return default
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ValueError(_("应为 是/否（或 1/0、Y/N）：%(v)s") % {"v": text})


@lru_cache(maxsize=1 << 16)
def parse_date(text: str) -> dt.date:
    value = text.strip().replace("/", "-").replace(".", "-")
    value = re.sub(r"[年月]", "-", value).replace("日", "")
    if " " in value or "T" in value:
        value = re.split(r"[ T]", value, maxsplit=1)[0]
    if re.fullmatch(r"\d{8}", value):
        value = f"{value[:4]}-{value[4:6]}-{value[6:]}"
    m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", value)
    if not m:
        raise ValueError(_("日期格式应为 YYYY-MM-DD：%(v)s") % {"v": text})
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError as exc:
        raise ValueError(_("日期不存在：%(v)s") % {"v": text}) from exc


_DATETIME_RE = re.compile(r"(\S+?)(?:\s+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?")


@lru_cache(maxsize=1 << 16)
def parse_datetime(text: str) -> dt.datetime:
    """A local date or date-time (business time zone) as an aware datetime. Cached: exports
    repeat the same dates over and over."""
    value = text.strip().replace("T", " ")
    m = _DATETIME_RE.fullmatch(value)
    if not m:
        raise ValueError(_("时间格式应为 YYYY-MM-DD HH:MM：%(v)s") % {"v": text})
    day = parse_date(m.group(1))
    try:
        clock = dt.time(int(m.group(2) or 0), int(m.group(3) or 0), int(m.group(4) or 0))
    except ValueError as exc:
        raise ValueError(_("时间不存在：%(v)s") % {"v": text}) from exc
    return timezone.make_aware(dt.datetime.combine(day, clock))


def parse_decimal(text: str, *, places: int = 2, minimum: Decimal | None = Decimal("0")) -> Decimal:
    value = text.strip().replace(",", "").replace("¥", "").replace("￥", "").replace("元", "")
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(_("应为数字：%(v)s") % {"v": text}) from exc
    if not number.is_finite():
        raise ValueError(_("应为数字：%(v)s") % {"v": text})
    quantum = Decimal(1).scaleb(-places)
    if number != number.quantize(quantum):
        raise ValueError(_("最多 %(n)d 位小数：%(v)s") % {"n": places, "v": text})
    if minimum is not None and number < minimum:
        raise ValueError(_("不能小于 %(m)s：%(v)s") % {"m": minimum, "v": text})
    return number.quantize(quantum)


def parse_int(text: str, *, minimum: int | None = 0) -> int:
    value = text.strip()
    try:
        number = int(Decimal(value)) if re.fullmatch(r"-?\d+(\.0+)?", value) else int(value)
    except (ValueError, InvalidOperation) as exc:
        raise ValueError(_("应为整数：%(v)s") % {"v": text}) from exc
    if minimum is not None and number < minimum:
        raise ValueError(_("不能小于 %(m)d：%(v)s") % {"m": minimum, "v": text})
    return number


def parse_choice(text: str, choices: Any, *, words: Mapping[str, str], message: str) -> str:
    """A choice code from its code, its label (any case) or a synonym in ``words``.

    ``message`` is the caller's translated template with ``%(v)s`` and ``%(all)s``.
    """
    value = text.strip()
    key = value.lower()
    if key in choices.values:
        return key
    by_label = {str(label).lower(): code for code, label in choices.choices}
    found = by_label.get(key) or words.get(key)
    if found is None:
        labels = "、".join(str(label) for _code, label in choices.choices)
        raise ValueError(message % {"v": value, "all": labels})
    return str(found)


def split_list(text: str) -> list[str]:
    """Items separated by 、 ; ； , ， | or new lines, in order, without duplicates."""
    return list(dict.fromkeys(v.strip() for v in LIST_SPLIT_RE.split(text or "") if v.strip()))


def row_failure(exc: Exception) -> tuple[str, str]:
    """(reason, code) for an error raised while writing one row."""
    if isinstance(exc, DomainError):
        return str(exc.message), exc.code
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return _("数据库拒绝了这一行：%(e)s") % {"e": first_line[:200]}, "db_error"


def check_length(text: str, limit: int) -> str:
    if len(text) > limit:
        raise ValueError(_("不能超过%(n)d个字") % {"n": limit})
    return text


# --- CLI ----------------------------------------------------------------------------------

KINDS: dict[str, str] = {
    "stores": "carecard.chain.importers:import_stores",
    "staff": "carecard.chain.importers:import_staff",
    "products": "carecard.catalog.importers:import_products",
    "members": "carecard.members.importers:import_members",
}


def importer_for(kind: str) -> Callable[..., ImportReport]:
    try:
        target = KINDS[kind]
    except KeyError as exc:
        raise ImportFailed(_("未知的导入类型：%(k)s") % {"k": kind}) from exc
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def run_import_cli(*, kind: str, path: Path, bulk: bool = False, report: Path | None = None) -> int:
    """``carecard import KIND PATH [--bulk] [--report F]``.

    Exit code 0: every row imported; 1: some rows rejected (see the report); 2: the file was
    refused as a whole and nothing was written.
    """
    out, err = sys.stdout, sys.stderr
    try:
        importer = importer_for(kind)
        kwargs: dict[str, Any] = {"bulk": bulk} if kind == "members" else {}
        if bulk and kind != "members":
            err.write(_("--bulk 只适用于会员导入 (members)；其余类型按行导入。\n"))
        result = importer(Path(path), **kwargs)
    except ImportFailed as exc:
        err.write(f"{exc.message}\n")
        for e in exc.row_errors:
            err.write(f"  第 {e.row} 行 [{e.column}]: {e.reason}\n")
        if report is not None:
            failed = ImportReport(kind=kind, source=str(path))
            for e in exc.row_errors or [RowError(0, "", exc.message, exc.code)]:
                failed.reject(e.row, e.column, e.reason, code=e.code)
            failed.write_csv(report)
        return 2
    out.write(result.summary() + "\n")
    for warning in result.warnings:
        out.write(f"  注意: {warning}\n")
    if result.generated_passwords:
        out.write(_("已为以下新账号生成初始密码（只显示这一次，请转交本人并要求修改）：\n"))
        for row, username, password in result.generated_passwords:
            out.write(f"  第 {row} 行  {username}  {password}\n")
    shown = 20
    for e in result.errors[:shown]:
        out.write(f"  第 {e.row} 行 [{e.column}]: {e.reason}\n")
    if len(result.errors) > shown:
        out.write(
            _("  … 另有 %(n)d 条错误") % {"n": len(result.errors) - shown}
            + (_("，见报告 %(p)s") % {"p": report} if report else _("，用 --report 导出全部"))
            + "\n"
        )
    if report is not None:
        result.write_csv(report)
        out.write(_("拒绝行报告已写入 %(p)s\n") % {"p": report})
    return 0 if result.ok else 1
