from django.apps import AppConfig


class LoyaltyConfig(AppConfig):
    name = "carecard.loyalty"
    label = "loyalty"
    verbose_name = "积分与等级"

    def ready(self) -> None:
        # A member merge combines this app's per-member state (members.services.member_merge).
        from carecard.loyalty.merge import merge_loyalty
        from carecard.members import services as members

        if merge_loyalty not in members.MERGE_HOOKS:
            members.MERGE_HOOKS.append(merge_loyalty)
