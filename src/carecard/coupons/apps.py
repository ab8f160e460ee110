from django.apps import AppConfig


class CouponsConfig(AppConfig):
    name = "carecard.coupons"
    label = "coupons"
    verbose_name = "优惠券"
