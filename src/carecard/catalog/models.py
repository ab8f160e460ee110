from __future__ import annotations

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class ItemClass(models.TextChoices):
    """Regulatory class of an item: pricing and gift rules target these (C-3)."""

    RX = "rx", _("处方药")
    OTC_A = "otc_a", _("甲类OTC")
    OTC_B = "otc_b", _("乙类OTC")
    TCM = "tcm", _("中药饮片")
    HEALTH_FOOD = "health_food", _("保健食品")
    DEVICE = "device", _("医疗器械")
    PERSONAL_CARE = "personal_care", _("个护")
    OTHER = "other", _("其他")


MEDICINE_CLASSES = frozenset({ItemClass.RX, ItemClass.OTC_A, ItemClass.OTC_B, ItemClass.TCM})


class Category(models.Model):
    """A node of the category tree (e.g. 处方药 › 心血管 › 降压药)."""

    code = models.CharField(_("编码"), max_length=32, unique=True)
    name = models.CharField(_("名称"), max_length=100)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
        verbose_name=_("上级分类"),
    )
    item_class = models.CharField(
        _("类别"), max_length=20, choices=ItemClass.choices, default=ItemClass.OTHER
    )

    class Meta:
        verbose_name = _("商品分类")
        verbose_name_plural = _("商品分类")
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Ingredient(models.Model):
    """An active ingredient (e.g. 氨氯地平); safety checks compare these."""

    code = models.CharField(_("编码"), max_length=32, unique=True)
    name = models.CharField(_("名称"), max_length=100, unique=True)

    class Meta:
        verbose_name = _("成分")
        verbose_name_plural = _("成分")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DrugClass(models.Model):
    """A pharmacological class (e.g. 钙通道阻滞剂, 青霉素类) for allergy/interaction rules."""

    code = models.CharField(_("编码"), max_length=32, unique=True)
    name = models.CharField(_("名称"), max_length=100)

    class Meta:
        verbose_name = _("药物类别")
        verbose_name_plural = _("药物类别")
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    """A sellable item (SKU) with prices, regulatory class and flags."""

    sku = models.CharField(_("商品编码"), max_length=32, unique=True)
    barcode = models.CharField(_("条码"), max_length=32, blank=True, db_index=True)
    name = models.CharField(_("品名"), max_length=200)
    brand = models.CharField(_("品牌"), max_length=100, blank=True)
    manufacturer = models.CharField(_("生产厂家"), max_length=200, blank=True)
    specification = models.CharField(_("规格"), max_length=100, blank=True)
    pack_size = models.PositiveIntegerField(_("包装数量"), default=1)
    unit = models.CharField(_("单位"), max_length=10, default="盒")
    label_dose = models.CharField(_("用法用量"), max_length=200, blank=True)
    days_supply = models.PositiveIntegerField(_("每盒可用天数"), null=True, blank=True)
    category = models.ForeignKey(
        Category, on_delete=models.PROTECT, related_name="products", verbose_name=_("分类")
    )
    item_class = models.CharField(
        _("类别"), max_length=20, choices=ItemClass.choices, default=ItemClass.OTHER
    )
    shelf_price = models.DecimalField(
        _("零售价"), max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    member_price = models.DecimalField(
        _("会员价"), max_digits=10, decimal_places=2, null=True, blank=True
    )
    cost = models.DecimalField(_("成本价"), max_digits=10, decimal_places=2, null=True, blank=True)
    is_special_price = models.BooleanField(_("特价"), default=False)
    is_limited = models.BooleanField(_("限量"), default=False)
    is_promotional = models.BooleanField(_("促销"), default=False)
    is_insurance_listed = models.BooleanField(_("医保目录"), default=False)
    contains_ephedrine = models.BooleanField(_("含麻黄碱"), default=False)
    is_active = models.BooleanField(_("在售"), default=True)
    ingredients = models.ManyToManyField(
        Ingredient, blank=True, related_name="products", verbose_name=_("成分")
    )
    drug_classes = models.ManyToManyField(
        DrugClass, blank=True, related_name="products", verbose_name=_("药物类别")
    )

    class Meta:
        verbose_name = _("商品")
        verbose_name_plural = _("商品")
        ordering = ["sku"]
        constraints = [
            models.CheckConstraint(condition=Q(shelf_price__gte=0), name="product_price_nonneg"),
            models.CheckConstraint(
                condition=Q(member_price__isnull=True) | Q(member_price__gte=0),
                name="product_member_price_nonneg",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.specification}".strip()

    @property
    def is_rx(self) -> bool:
        return self.item_class == ItemClass.RX

    @property
    def excluded_from_member_benefits(self) -> bool:
        """特价/限量/促销 items get no member discount and earn no points by default (C-3)."""
        return self.is_special_price or self.is_limited or self.is_promotional
