from django.apps import AppConfig


class WalletConfig(AppConfig):
    name = "carecard.wallet"
    label = "wallet"
    verbose_name = "储值"

    def ready(self) -> None:
        # A member merge combines this app's per-member state (members.services.member_merge).
        from carecard.members import services as members
        from carecard.wallet.merge import merge_wallets

        if merge_wallets not in members.MERGE_HOOKS:
            members.MERGE_HOOKS.append(merge_wallets)
