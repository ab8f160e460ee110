from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "carecard.core"
    label = "core"
    verbose_name = "核心"
