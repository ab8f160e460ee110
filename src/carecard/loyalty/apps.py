from django.apps import AppConfig


class LoyaltyConfig(AppConfig):
    name = "carecard.loyalty"
    label = "loyalty"
    verbose_name = "积分与等级"
