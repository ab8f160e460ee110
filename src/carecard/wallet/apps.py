from django.apps import AppConfig


class WalletConfig(AppConfig):
    name = "carecard.wallet"
    label = "wallet"
    verbose_name = "储值"
