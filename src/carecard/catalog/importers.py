"""Import of products (I-2): prices, flags, category, ingredients; upsert by SKU.

Catalogs are tens of thousands of rows; each goes through ``product_upsert`` in its own
savepoint so a rejected row writes nothing. Columns that are absent from the file leave the
existing product's values untouched.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import DataError, IntegrityError, transaction
from django.utils.translation import gettext as _

from carecard.catalog import services
from carecard.catalog.models import Category, DrugClass, ItemClass, Product
from carecard.core.audit import AuditAction, audit
from carecard.core.errors import DomainError
from carecard.core.importing import (
    Column,
    ImportReport,
    check_length,
    parse_bool,
    parse_choice,
    parse_decimal,
    parse_int,
    read_records,
    row_failure,
    split_list,
)

MAX_PRICE = Decimal("99999999.99")

PRODUCT_COLUMNS = (
    Column("sku", "商品编码", ("商品编号", "货号", "sku", "product code"), required=True),
    Column("barcode", "条码", ("条形码", "国际条码", "barcode", "ean")),
    Column("name", "品名", ("商品名称", "通用名", "name", "product name"), required=True),
    Column("brand", "品牌", ("brand",)),
    Column("manufacturer", "生产厂家", ("厂家", "生产企业", "manufacturer")),
    Column("specification", "规格", ("specification", "spec")),
    Column("pack_size", "包装数量", ("包装", "pack_size", "pack size")),
    Column("unit", "单位", ("unit",)),
    Column("label_dose", "用法用量", ("label_dose", "dose", "dosage")),
    Column("days_supply", "每盒可用天数", ("可用天数", "days_supply", "days supply")),
    Column("category_code", "分类编码", ("类别编码", "category_code", "category code")),
    Column("category_name", "分类名称", ("分类", "category", "category_name")),
    Column("item_class", "类别", ("药品类别", "管理类别", "item_class", "item class")),
    Column("shelf_price", "零售价", ("售价", "价格", "shelf_price", "price"), required=True),
    Column("member_price", "会员价", ("member_price", "member price")),
    Column("cost", "成本价", ("进价", "成本", "cost")),
    Column("is_special_price", "特价", ("special", "is_special_price")),
    Column("is_limited", "限量", ("limited", "is_limited")),
    Column("is_promotional", "促销", ("promotional", "is_promotional")),
    Column("is_insurance_listed", "医保", ("医保目录", "insurance", "is_insurance_listed")),
    Column("contains_ephedrine", "含麻黄碱", ("ephedrine", "contains_ephedrine")),
    Column("is_active", "在售", ("是否在售", "active", "is_active")),
    Column("ingredients", "成分", ("有效成分", "活性成分", "ingredients")),
    Column("drug_classes", "药物类别", ("drug_classes", "drug classes")),
)

_TEXT_LIMITS = {
    "barcode": 32,
    "name": 200,
    "brand": 100,
    "manufacturer": 200,
    "specification": 100,
    "unit": 10,
    "label_dose": 200,
}
_FLAGS = (
    "is_special_price",
    "is_limited",
    "is_promotional",
    "is_insurance_listed",
    "contains_ephedrine",
    "is_active",
)
_CLASS_WORDS = {
    "rx": ItemClass.RX,
    "处方": ItemClass.RX,
    "甲类": ItemClass.OTC_A,
    "otc甲类": ItemClass.OTC_A,
    "乙类": ItemClass.OTC_B,
    "otc乙类": ItemClass.OTC_B,
    "饮片": ItemClass.TCM,
    "保健品": ItemClass.HEALTH_FOOD,
    "器械": ItemClass.DEVICE,
}


def _item_class(text: str) -> str:
    return parse_choice(
        text, ItemClass, words=_CLASS_WORDS, message=_("未知类别「%(v)s」，应为：%(all)s")
    )


def import_products(path: Path, *, actor: Any = None) -> ImportReport:
    """Create or update products by SKU. Unknown category codes are created when the row also
    gives the category name; ingredients are created by name; drug classes must exist."""
    hmap, records = read_records(path, PRODUCT_COLUMNS)
    report = ImportReport(kind="products", source=str(path))
    if not hmap.has("category_code") and not hmap.has("category_name"):
        report.warnings.append(_("文件没有分类列：新商品将被拒绝，已有商品保留原分类"))
    categories = {c.code: c for c in Category.objects.all()}
    categories_by_name = {c.name: c for c in categories.values()}
    drug_classes = {d.code: d for d in DrugClass.objects.all()}
    drug_classes.update({d.name: d for d in list(drug_classes.values())})
    existing = dict(Product.objects.values_list("sku", "category_id"))
    seen: dict[str, int] = {}
    for row, rec in records:
        report.total += 1
        sku = rec.get("sku", "")
        errors: list[tuple[str, str]] = []
        fields: dict[str, Any] = {}

        def parse(
            key: str,
            fn: Any,
            values: dict[str, Any] = fields,
            rec: dict[str, str] = rec,
            errors: list[tuple[str, str]] = errors,
        ) -> None:
            if not hmap.has(key):
                return
            try:
                values[key] = fn(rec[key])
            except ValueError as exc:
                errors.append((key, str(exc)))

        if not sku:
            errors.append(("sku", _("必填")))
        elif len(sku) > 32:
            errors.append(("sku", _("不能超过%(n)d个字") % {"n": 32}))
        elif sku in seen:
            errors.append(("sku", _("商品编码与第 %(n)d 行重复") % {"n": seen[sku]}))
        if not rec.get("name"):
            errors.append(("name", _("必填")))
        for key, limit in _TEXT_LIMITS.items():
            parse(key, lambda v, n=limit: check_length(v, n))
        if "unit" in fields and not fields["unit"]:
            del fields["unit"]
        parse("pack_size", lambda v: parse_int(v, minimum=1) if v else 1)
        parse("days_supply", lambda v: parse_int(v, minimum=1) if v else None)
        for key in ("shelf_price", "member_price", "cost"):
            parse(key, lambda v, k=key: _price(v, required=k == "shelf_price"))
        for key in _FLAGS:
            parse(key, lambda v, k=key: parse_bool(v, default=k == "is_active"))
        parse("item_class", lambda v: _item_class(v) if v else None)
        if fields.get("item_class") is None:
            fields.pop("item_class", None)
        if (
            fields.get("member_price") is not None
            and fields.get("shelf_price") is not None
            and fields["member_price"] > fields["shelf_price"]
        ):
            errors.append(("member_price", _("会员价不能高于零售价")))
        ingredients: list[str] | None = None
        if hmap.has("ingredients"):
            ingredients = split_list(rec["ingredients"])
            if any(len(n) > 100 for n in ingredients):
                errors.append(("ingredients", _("成分名称不能超过100个字")))
        classes: list[DrugClass] | None = None
        if hmap.has("drug_classes"):
            classes = []
            for item in split_list(rec["drug_classes"]):
                found = drug_classes.get(item)
                if found is None:
                    errors.append(("drug_classes", _("药物类别不存在：%(v)s") % {"v": item}))
                else:
                    classes.append(found)
        category, category_error = _category(
            rec, categories, categories_by_name, fields.get("item_class")
        )
        if category is None and (category_error or sku not in existing):
            errors.append(
                (
                    "category_code" if hmap.has("category_code") else "category_name",
                    category_error or _("新商品必须填写分类编码或分类名称"),
                )
            )
        for key, reason in errors:
            report.reject(row, hmap.column_name(key), reason, ref=sku)
        if errors:
            continue
        seen[sku] = row
        try:
            with transaction.atomic():
                if category is None:
                    category = Category.objects.get(pk=existing[sku])
                elif category.pk is None:
                    category = services.category_upsert(
                        code=category.code, name=category.name, item_class=category.item_class
                    )
                    categories[category.code] = category
                    categories_by_name[category.name] = category
                services.product_upsert(
                    sku=sku,
                    category=category,
                    ingredients=ingredients,
                    drug_classes=classes,
                    **fields,
                )
        except (DomainError, IntegrityError, DataError) as exc:
            reason, err_code = row_failure(exc)
            report.reject(row, hmap.column_name("sku"), reason, code=err_code, ref=sku)
            continue
        if sku in existing:
            report.updated += 1
        else:
            report.created += 1
            existing[sku] = category.pk
    audit(
        action=AuditAction.IMPORT,
        actor=actor,
        target="import:products",
        detail={
            "file": Path(report.source).name,
            "total": report.total,
            "created": report.created,
            "updated": report.updated,
            "rejected": report.rejected,
        },
    )
    return report.finish()


def _price(text: str, *, required: bool) -> Decimal | None:
    if not text.strip():
        if required:
            raise ValueError(_("必填"))
        return None
    value = parse_decimal(text)
    if value > MAX_PRICE:
        raise ValueError(_("金额过大：%(v)s") % {"v": text})
    return value


def _category(
    rec: dict[str, str],
    by_code: dict[str, Category],
    by_name: dict[str, Category],
    item_class: str | None,
) -> tuple[Category | None, str]:
    """The row's category; an unsaved Category when a new code comes with its name."""
    code = rec.get("category_code", "")
    name = rec.get("category_name", "")
    if code:
        if code in by_code:
            return by_code[code], ""
        if not name:
            return None, _("分类编码不存在：%(c)s（新分类请同时填写分类名称）") % {"c": code}
        if len(code) > 32 or len(name) > 100:
            return None, _("分类编码或名称过长")
        return Category(code=code, name=name, item_class=item_class or ItemClass.OTHER), ""
    if name:
        if name in by_name:
            return by_name[name], ""
        return None, _("分类名称不存在：%(n)s（新分类请同时填写分类编码）") % {"n": name}
    return None, ""
