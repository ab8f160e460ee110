from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "carecard.console"
    label = "console"
    verbose_name = "员工控制台"
