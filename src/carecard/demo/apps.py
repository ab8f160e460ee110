from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "carecard.demo"
    label = "demo"
    verbose_name = "演示数据"
