from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "carecard.api"
    label = "api"
    verbose_name = "API"
