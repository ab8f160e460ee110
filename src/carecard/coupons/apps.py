from django.apps import AppConfig


class CouponsConfig(AppConfig):
    name = "carecard.coupons"
    label = "coupons"
    verbose_name = "优惠券"

    def ready(self) -> None:
        # A member merge combines this app's per-member state (members.services.member_merge).
        from carecard.coupons.merge import merge_quotas
        from carecard.coupons.models import CouponQuota
        from carecard.members import services as members

        members.MERGE_OWN.add(CouponQuota)

        if merge_quotas not in members.MERGE_HOOKS:
            members.MERGE_HOOKS.append(merge_quotas)
