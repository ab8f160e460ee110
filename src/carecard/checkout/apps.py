from django.apps import AppConfig


class CheckoutConfig(AppConfig):
    name = "carecard.checkout"
    label = "checkout"
    verbose_name = "收银"
