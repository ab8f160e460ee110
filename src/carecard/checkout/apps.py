from django.apps import AppConfig


class CheckoutConfig(AppConfig):
    name = "carecard.checkout"
    label = "checkout"
    verbose_name = "收银"

    def ready(self) -> None:
        # A member merge combines this app's per-member state (members.services.member_merge).
        from carecard.checkout.merge import merge_stats
        from carecard.members import services as members

        if merge_stats not in members.MERGE_HOOKS:
            members.MERGE_HOOKS.append(merge_stats)
