from django.apps import AppConfig


class MembersConfig(AppConfig):
    name = "carecard.members"
    label = "members"
    verbose_name = "会员"
