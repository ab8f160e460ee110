from django.apps import AppConfig


class ChainConfig(AppConfig):
    name = "carecard.chain"
    label = "chain"
    verbose_name = "连锁与门店"
