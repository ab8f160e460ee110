"""Write use cases for the catalog."""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import transaction

from carecard.catalog.models import Category, DrugClass, Ingredient, Product


def category_upsert(
    *, code: str, name: str, parent: Category | None = None, item_class: str = "other"
) -> Category:
    category, _ = Category.objects.update_or_create(
        code=code, defaults={"name": name, "parent": parent, "item_class": item_class}
    )
    return category


def drug_class_upsert(*, code: str, name: str) -> DrugClass:
    drug_class, _ = DrugClass.objects.update_or_create(code=code, defaults={"name": name})
    return drug_class


def ingredient_get_or_create(name: str) -> Ingredient:
    ingredient, _ = Ingredient.objects.get_or_create(
        name=name, defaults={"code": "ING" + hashlib.sha256(name.encode()).hexdigest()[:10].upper()}
    )
    return ingredient


@transaction.atomic
def product_upsert(
    *,
    sku: str,
    category: Category,
    ingredients: list[str] | None = None,
    drug_classes: list[DrugClass] | None = None,
    **fields: Any,
) -> Product:
    """Create or update a product by SKU; its item class follows the category unless given."""
    fields.setdefault("item_class", category.item_class)
    product, _ = Product.objects.update_or_create(
        sku=sku, defaults={"category": category, **fields}
    )
    if ingredients is not None:
        product.ingredients.set([ingredient_get_or_create(n) for n in ingredients])
    if drug_classes is not None:
        product.drug_classes.set(drug_classes)
    return product
