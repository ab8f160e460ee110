"""The redemption catalogue (P-4): members spend points on coupons, gifts and services."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from carecard.core import idempotency
from carecard.core.errors import DomainError, FieldError, NotFound
from carecard.coupons import services as coupon_services
from carecard.coupons.models import CouponSource
from carecard.loyalty import services as points
from carecard.loyalty.locks import lock_account
from carecard.loyalty.models import EntryKind, Reward, RewardKind, RewardRedemption
from carecard.members.models import Member, MemberStatus


def _refuse(code: str, message: str, field: str = "reward") -> DomainError:
    return DomainError(
        code=code, message=message, errors=[FieldError(field, code, message)], status=422
    )


def reward_redeem(
    *,
    member: Member,
    reward: Reward,
    store_id: int | None = None,
    at: dt.datetime | None = None,
    actor: Any = None,
    request_key: str = "",
) -> RewardRedemption:
    """Spend ``reward.points`` of the member's available points (oldest expiry first) and give
    the reward: a coupon issued to the member, or a gift taken from stock. All or nothing.

    With ``request_key`` (the form's or the till's key) a resent request returns the first
    redemption instead of redeeming twice; the same key for another reward is a 409."""
    at = at or timezone.now()
    if member.status != MemberStatus.ACTIVE:
        raise _refuse("member_inactive", _("会员状态不可兑换"), "member")
    if not reward.active:
        raise _refuse("reward_inactive", _("该兑换项目已停用"))
    month = timezone.localtime(at).month
    if reward.months and month not in reward.months:
        months = "、".join(f"{m}月" for m in sorted(reward.months))
        raise _refuse("outside_window", _("只能在%(m)s兑换") % {"m": months})
    if reward.store_ids and store_id not in reward.store_ids:
        raise _refuse("store_not_allowed", _("该门店不能兑换此项目"), "store")
    with transaction.atomic(durable=True):
        record = None
        if request_key:
            scope, digest = f"member:{member.pk}", idempotency.request_hash({"reward": reward.pk})
            key = idempotency.check_key(request_key)
            record = idempotency.claim(
                scope=scope, key=key, operation="reward_redeem", digest=digest
            )
            if record is None:
                stored = idempotency.replay(
                    scope=scope, key=key, operation="reward_redeem", digest=digest
                )
                assert stored is not None
                return RewardRedemption.objects.select_related("coupon").get(
                    pk=stored.response["redemption_id"]
                )
        account = lock_account(member.pk)
        if reward.stock is not None:
            # Stock is a counter: decrement only while some is left, no read-modify-write.
            taken = Reward.objects.filter(pk=reward.pk, stock__gt=0).update(stock=F("stock") - 1)
            if not taken:
                raise _refuse("out_of_stock", _("礼品已兑完"))
        entry = points.points_spend(
            account=account,
            points=reward.points,
            at=at,
            kind=EntryKind.REDEEM,
            store_id=store_id,
            reference=f"reward:{reward.pk}",
            reason=_("积分兑换：%(n)s") % {"n": reward.name},
            actor=actor,
        )
        coupon = None
        if reward.kind in (RewardKind.COUPON, RewardKind.SERVICE):
            coupon = coupon_services.coupon_issue(
                template=reward.coupon_template,
                member=member,
                at=at,
                source=CouponSource.POINTS_REDEMPTION,
                reference=f"points_entry:{entry.pk}",
                actor=actor,
            )
        redemption = RewardRedemption.objects.create(
            member=member, reward=reward, entry=entry, coupon=coupon, store_id=store_id, at=at
        )
        if record is not None:
            idempotency.store(record, response={"redemption_id": redemption.pk}, status_code=201)
        return redemption


def reward_get(reward_id: int) -> Reward:
    reward = Reward.objects.select_related("coupon_template").filter(pk=reward_id).first()
    if reward is None:
        raise NotFound("reward", _("兑换项目不存在"))
    return reward
