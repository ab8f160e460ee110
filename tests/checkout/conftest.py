"""Checkout fixtures: a small catalogue and the 王曲同心 rules."""

from __future__ import annotations

from decimal import Decimal

import pytest

from carecard.catalog.models import Category, ItemClass, Product
from carecard.loyalty.models import EarningPlan, PricingRule

D = Decimal


@pytest.fixture
def catalog():
    otc = Category.objects.create(code="OTC", name="乙类OTC", item_class=ItemClass.OTC_B)
    cold = Category.objects.create(code="OTC-COLD", name="感冒药", parent=otc, item_class="otc_b")
    rx = Category.objects.create(code="RX", name="处方药", item_class=ItemClass.RX)

    def product(sku, price, category, **kw):
        return Product.objects.create(
            sku=sku,
            name=kw.pop("name", sku),
            category=category,
            item_class=category.item_class,
            shelf_price=D(price),
            **kw,
        )

    return {
        "cold": product("P-COLD", "25.00", cold, name="感冒灵颗粒"),
        "vitc": product("P-VITC", "40.00", otc, name="维生素C片"),
        "special": product("P-SPEC", "10.00", otc, name="特价口罩", is_special_price=True),
        "rx": product("P-RX", "88.00", rx, name="氨氯地平片", is_insurance_listed=True),
    }


@pytest.fixture
def wangqu(db):
    """王曲同心: 9.8折 every day, 9.5折 on lunar 初八/十八/廿八, 1 point per CNY."""
    PricingRule.objects.create(name="会员折扣", kind="base", rate=D("0.98"))
    PricingRule.objects.create(
        name="会员日",
        kind="member_day",
        rate=D("0.95"),
        schedule_kind="lunar_days",
        schedule_days=[8, 18, 28],
    )
    EarningPlan.objects.create(name="每1元积1分", amount_per_point=D("1.00"))
