from django.contrib import admin

from carecard.catalog.models import Category, DrugClass, Ingredient, Product


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "parent", "item_class")
    list_filter = ("item_class",)
    search_fields = ("code", "name")


@admin.register(Ingredient)
class IngredientAdmin(admin.ModelAdmin):
    search_fields = ("code", "name")


@admin.register(DrugClass)
class DrugClassAdmin(admin.ModelAdmin):
    list_display = ("code", "name")


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = (
        "sku",
        "name",
        "specification",
        "item_class",
        "shelf_price",
        "member_price",
        "is_special_price",
        "is_active",
    )
    list_filter = ("item_class", "is_special_price", "is_insurance_listed", "is_active")
    search_fields = ("sku", "barcode", "name", "brand")
    filter_horizontal = ("ingredients", "drug_classes")
