"""Import of stores (with regions and trading-area zones) and staff accounts (I-2).

Files are small (hundreds of stores, thousands of staff), so each row goes through the chain
services in its own savepoint: a rejected row writes nothing, the good rows are kept. A
re-import updates by store code / login name and never duplicates.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.db import DataError, IntegrityError, transaction
from django.utils.translation import gettext as _

from carecard.chain import services
from carecard.chain.models import Region, Staff, Store
from carecard.core.audit import AuditAction, audit
from carecard.core.errors import DomainError, FieldError, ValidationFailed
from carecard.core.importing import (
    Column,
    HeaderMap,
    ImportReport,
    check_length,
    parse_bool,
    parse_choice,
    parse_date,
    read_records,
    row_failure,
)
from carecard.core.phone import InvalidPhone, normalize_mobile
from carecard.core.roles import HQ_ROLES, Role

STORE_COLUMNS = (
    Column("code", "门店编码", ("门店代码", "店号", "store_code", "store code"), required=True),
    Column("name", "门店名称", ("门店", "店名", "store_name", "store name"), required=True),
    Column("region_code", "片区编码", ("区域编码", "片区代码", "region"), required=True),
    Column("region_name", "片区名称", ("区域名称", "片区", "region name")),
    Column("province", "省", ("省份", "province")),
    Column("city", "市", ("城市", "city")),
    Column("district", "区县", ("区", "县", "区/县", "district", "county")),
    Column("street", "街道地址", ("地址", "详细地址", "street", "address")),
    Column("phone", "电话", ("门店电话", "联系电话", "phone", "tel")),
    Column("opened_on", "开业日期", ("开店日期", "opened_on", "opened", "opening date")),
    Column("is_active", "营业中", ("是否营业", "active", "is_active")),
    Column(
        "zones",
        "商圈",
        ("商圈区隔", "zones", "trading zones"),
        help="商圈名称:户数:关键词/关键词；多个商圈用分号分隔",
    ),
)

STAFF_COLUMNS = (
    Column("username", "登录名", ("账号", "用户名", "username", "login"), required=True),
    Column("name", "姓名", ("员工姓名", "name", "display_name")),
    Column("role", "角色", ("岗位", "role"), required=True),
    Column("store_code", "门店编码", ("所属门店", "门店代码", "store", "store_code")),
    Column("staff_code", "工号", ("员工编号", "staff_code", "employee no")),
    Column("mobile", "手机", ("手机号", "mobile", "phone")),
    Column("password", "初始密码", ("密码", "password", "initial password")),
)

_ROLE_WORDS = {
    "收银员": Role.CLERK,
    "店员": Role.CLERK,
    "药师": Role.PHARMACIST,
    "执业药师": Role.PHARMACIST,
    "门店店长": Role.STORE_MANAGER,
    "营运": Role.MARKETING,
    "企划": Role.MARKETING,
    "总部管理员": Role.HQ_ADMIN,
    "管理员": Role.HQ_ADMIN,
    "审计": Role.AUDITOR,
    "数据保护": Role.AUDITOR,
}


def _role(text: str) -> str:
    return parse_choice(
        text, Role, words=_ROLE_WORDS, message=_("未知角色「%(v)s」，应为：%(all)s")
    )


def _zones(text: str) -> list[dict[str, Any]]:
    """``陆家嘴:3200:陆家嘴/世纪大道；张江:1800:张江`` → zone dicts."""
    zones = []
    for entry in [e.strip() for e in text.replace("；", ";").split(";") if e.strip()]:
        parts = [p.strip() for p in entry.replace("：", ":").split(":")]
        name = parts[0]
        if not name or len(name) > 100:
            raise ValueError(_("商圈名称为空或过长：%(v)s") % {"v": entry})
        households = 0
        if len(parts) > 1 and parts[1]:
            if not parts[1].isdigit():
                raise ValueError(_("商圈户数应为整数：%(v)s") % {"v": entry})
            households = int(parts[1])
        keywords: list[str] = []
        if len(parts) > 2:
            for sep in ("、", ",", "，", "|"):
                parts[2] = parts[2].replace(sep, "/")
            keywords = [k.strip() for k in parts[2].split("/") if k.strip()]
        zones.append({"name": name, "households": households, "keywords": keywords})
    return zones


def _store_values(
    rec: dict[str, str], hmap: HeaderMap
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    errors: list[tuple[str, str]] = []
    values: dict[str, Any] = {}

    def check(key: str, fn: Any) -> None:
        if not hmap.has(key):
            return
        try:
            values[key] = fn(rec[key])
        except ValueError as exc:
            errors.append((key, str(exc)))

    for key, limit in (
        ("code", 32),
        ("name", 100),
        ("region_code", 32),
        ("region_name", 100),
        ("province", 32),
        ("city", 32),
        ("district", 32),
        ("street", 200),
        ("phone", 32),
    ):
        check(key, lambda v, n=limit: check_length(v, n))
    for key in ("code", "name", "region_code"):
        if not rec.get(key):
            errors.append((key, _("必填")))
    check("opened_on", lambda v: parse_date(v) if v else None)
    check("is_active", lambda v: parse_bool(v, default=True))
    check("zones", _zones)
    return values, errors


def import_stores(path: Path, *, actor: Staff | None = None) -> ImportReport:
    """Create or update stores by code; regions are created on the way; zones upserted by name."""
    hmap, records = read_records(path, STORE_COLUMNS)
    report = ImportReport(kind="stores", source=str(path))
    seen: dict[str, int] = {}
    existing = set(Store.objects.values_list("code", flat=True))
    regions = {r.code: r for r in Region.objects.all()}
    for row, rec in records:
        report.total += 1
        values, errors = _store_values(rec, hmap)
        code = rec.get("code", "")
        if code and code in seen:
            errors.append(("code", _("门店编码与第 %(n)d 行重复") % {"n": seen[code]}))
        for key, reason in errors:
            report.reject(row, hmap.column_name(key), reason, ref=code)
        if errors:
            continue
        seen[code] = row
        fields = {
            k: values[k]
            for k in (
                "province",
                "city",
                "district",
                "street",
                "phone",
                "opened_on",
                "is_active",
            )
            if k in values
        }
        try:
            with transaction.atomic():
                region = regions.get(values["region_code"])
                region_name = values.get("region_name") or ""
                if region is None or (region_name and region_name != region.name):
                    region = services.region_upsert(
                        code=values["region_code"], name=region_name or values["region_code"]
                    )
                store = services.store_upsert(
                    code=code, name=values["name"], region=region, **fields
                )
                for zone in values.get("zones") or []:
                    services.zone_upsert(
                        store=store,
                        name=zone["name"],
                        district=store.district,
                        keywords=zone["keywords"],
                        households=zone["households"],
                    )
        except (DomainError, IntegrityError, DataError) as exc:
            reason, err_code = row_failure(exc)
            report.reject(row, hmap.column_name("code"), reason, code=err_code, ref=code)
            continue
        regions[region.code] = region  # only once the row's savepoint is kept
        if code in existing:
            report.updated += 1
        else:
            report.created += 1
            existing.add(code)
    _audit_run(actor, report)
    return report.finish()


def _audit_run(actor: Staff | None, report: ImportReport) -> None:
    audit(
        action=AuditAction.IMPORT,
        actor=actor,
        target=f"import:{report.kind}",
        detail={
            "file": Path(report.source).name,
            "total": report.total,
            "created": report.created,
            "updated": report.updated,
            "rejected": report.rejected,
        },
    )


def import_staff(path: Path, *, actor: Staff | None = None) -> ImportReport:
    """Create staff accounts, or update an existing login's name, role, store, code and mobile.

    A new account without an initial password gets a generated one, returned in
    ``report.generated_passwords`` (the CLI prints them once). An existing account's password is
    never changed by an import.
    """
    hmap, records = read_records(path, STAFF_COLUMNS)
    report = ImportReport(kind="staff", source=str(path))
    stores = {s.code: s for s in Store.objects.all()}
    seen_user: dict[str, int] = {}
    seen_code: dict[str, int] = {}
    for row, rec in records:
        report.total += 1
        username = rec.get("username", "")
        errors: list[tuple[str, str]] = []
        role = ""
        try:
            role = _role(rec.get("role", ""))
        except ValueError as exc:
            errors.append(("role", str(exc)))
        store = None
        store_code = rec.get("store_code", "")
        if store_code:
            store = stores.get(store_code)
            if store is None:
                errors.append(("store_code", _("门店编码不存在：%(c)s") % {"c": store_code}))
        elif role and role not in HQ_ROLES:
            errors.append(("store_code", _("门店角色必须指定所属门店")))
        mobile = rec.get("mobile", "")
        if mobile:
            try:
                mobile = normalize_mobile(mobile)
            except InvalidPhone:
                errors.append(("mobile", _("手机号格式不正确")))
        if not username:
            errors.append(("username", _("必填")))
        elif len(username) > 150:
            errors.append(("username", _("不能超过%(n)d个字") % {"n": 150}))
        elif username in seen_user:
            errors.append(("username", _("登录名与第 %(n)d 行重复") % {"n": seen_user[username]}))
        staff_code = rec.get("staff_code", "")
        if len(staff_code) > 32:
            errors.append(("staff_code", _("不能超过%(n)d个字") % {"n": 32}))
        elif staff_code and staff_code in seen_code:
            errors.append(("staff_code", _("工号与第 %(n)d 行重复") % {"n": seen_code[staff_code]}))
        name = rec.get("name", "")
        if len(name) > 50:
            errors.append(("name", _("不能超过%(n)d个字") % {"n": 50}))
        for key, reason in errors:
            report.reject(row, hmap.column_name(key), reason, ref=username)
        if errors:
            continue
        seen_user[username] = row
        if staff_code:
            seen_code[staff_code] = row
        try:
            with transaction.atomic():
                created = _upsert_staff(
                    actor=actor,
                    username=username,
                    role=role,
                    store=store,
                    name=name,
                    staff_code=staff_code if hmap.has("staff_code") else None,
                    mobile=mobile if hmap.has("mobile") else None,
                    password=rec.get("password", ""),
                    report=report,
                    row=row,
                )
        except (DomainError, IntegrityError, DataError) as exc:
            for e in getattr(exc, "errors", None) or []:
                column = {"home_store": "store_code"}.get(e.field, e.field)
                report.reject(row, hmap.column_name(column), e.message, code=e.code, ref=username)
            if not getattr(exc, "errors", None):
                reason, err_code = row_failure(exc)
                report.reject(
                    row, hmap.column_name("username"), reason, code=err_code, ref=username
                )
            continue
        if created:
            report.created += 1
        else:
            report.updated += 1
    _audit_run(actor, report)
    return report.finish()


def _upsert_staff(
    *,
    actor: Staff | None,
    username: str,
    role: str,
    store: Store | None,
    name: str,
    staff_code: str | None,
    mobile: str | None,
    password: str,
    report: ImportReport,
    row: int,
) -> bool:
    existing = Staff.objects.select_for_update().filter(username=username).first()
    if staff_code and (
        Staff.objects.filter(staff_code=staff_code)
        .exclude(pk=existing.pk if existing else None)
        .exists()
    ):
        raise ValidationFailed([FieldError("staff_code", "taken", _("工号已被其他员工使用"))])
    if existing is None:
        generated = not password
        if generated:
            password = secrets.token_urlsafe(9)
        services.staff_create(
            actor=actor,
            username=username,
            password=password,
            role=role,
            display_name=name,
            home_store=store,
            staff_code=staff_code or "",
            mobile=mobile or "",
        )
        if generated:
            report.generated_passwords.append((row, username, password))
        return True
    if existing.role != role or existing.home_store_id != (
        None if role in HQ_ROLES else getattr(store, "pk", None)
    ):
        services.staff_set_role(
            actor=actor,  # type: ignore[arg-type]
            staff=existing,
            role=role,
            home_store=store,
            is_active=existing.is_active,
        )
    changes: dict[str, Any] = {}
    if name and name != existing.display_name:
        changes["display_name"] = name
    if staff_code is not None and staff_code != existing.staff_code:
        changes["staff_code"] = staff_code
    if mobile is not None and mobile != existing.mobile:
        changes["mobile"] = mobile
    if changes:
        Staff.objects.filter(pk=existing.pk).update(**changes)
    return False
