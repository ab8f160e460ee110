"""The member page's redemption section (积分兑换, P-4): the rewards catalogue with cost, window,
stock and stores, what the member can redeem now, and the redemption itself.

Redemption is counter work (A-2): staff who may use the counter and have a home store redeem
for any active member, and the redemption is booked to their store (a reward limited to some
stores is refused elsewhere). ``loyalty.rewards.reward_redeem`` decides; the page only greys
out what it would refuse and says why, and shows the service's refusal next to the reward when
something changed in between (stock taken by another counter, points spent).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from carecard.chain.models import Store
from carecard.console import selectors as console_selectors
from carecard.console.benefits import months_text
from carecard.console.http import done, page, permission
from carecard.console.views_counter import counter_store
from carecard.console.views_loyalty import _member
from carecard.core.errors import DomainError, NotFound
from carecard.core.roles import Perm
from carecard.loyalty.models import Reward
from carecard.loyalty.rewards import reward_get, reward_redeem
from carecard.loyalty.selectors import points_summary
from carecard.members.models import Member, MemberStatus


def can_redeem(staff: Any, member: Member) -> bool:
    return member.status == MemberStatus.ACTIVE and counter_store(staff) is not None


def _why_not(
    reward: Reward, *, member: Member, store_id: int | None, available: int, month: int
) -> str:
    """Why the member cannot redeem ``reward`` here and now (the service's own rules), or ""."""
    if member.status != MemberStatus.ACTIVE:
        return _("会员状态不可兑换")
    if reward.months and month not in reward.months:
        return _("只能在%(m)s兑换") % {"m": months_text(reward.months)}
    if reward.store_ids and store_id not in reward.store_ids:
        return _("本店不能兑换此项目")
    if reward.stock is not None and reward.stock <= 0:
        return _("礼品已兑完")
    if available < reward.points:
        return _("积分不足，还差 %(n)d 分") % {"n": reward.points - available}
    return ""


def _rewards_context(
    request: HttpRequest, member: Member, *, errors: dict[int, str] | None = None
) -> dict[str, Any]:
    staff = request.user
    now = timezone.now()
    store = counter_store(staff)
    store_id = store.pk if store else None
    summary = points_summary(member.pk, at=now)
    catalogue = console_selectors.reward_catalogue()
    restricted = {int(s) for r in catalogue for s in (r.store_ids or [])}
    stores = Store.objects.in_bulk(restricted) if restricted else {}
    month = timezone.localtime(now).month
    allowed = can_redeem(staff, member)
    rows = []
    for reward in catalogue:
        why = _why_not(
            reward, member=member, store_id=store_id, available=summary.available, month=month
        )
        rows.append(
            {
                "r": reward,
                "why_not": why,
                "can": allowed and not why,
                "stores": [stores[s].name for s in reward.store_ids or [] if s in stores],
                "error": (errors or {}).get(reward.pk, ""),
            }
        )
    shown = {reward.pk for reward in catalogue}
    return {
        "member": member,
        # A refusal of a reward no longer in the catalogue (stopped meanwhile) goes on top.
        "general_errors": [m for pk, m in (errors or {}).items() if pk not in shown],
        "available": summary.available,
        "rows": rows,
        "can_redeem": allowed,
        "store": store,
        "history": console_selectors.member_redemptions(member.pk, limit=5),
        # One key per rendering (and reward): resending the same form replays, not redeems.
        "redeem_key": f"console-{uuid.uuid4().hex}",
    }


def _render(request: HttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    return page(
        request,
        "console/member_rewards.html",
        context,
        partials={"member-rewards": "rewards"},
        status=status,
    )


@permission(Perm.MEMBER_VIEW)
def member_rewards(request: HttpRequest, pk: int) -> HttpResponse:
    return _render(request, _rewards_context(request, _member(pk)))


@require_POST
@permission(Perm.MEMBER_VIEW)
def member_reward_redeem(request: HttpRequest, pk: int) -> HttpResponse:
    staff = request.user
    member = _member(pk)
    store = counter_store(staff)
    if store is None:
        raise PermissionDenied(_("只有门店员工可以办理积分兑换"))
    raw = request.POST.get("reward", "").strip()
    if not raw.isdigit() or len(raw) > 12:
        raise Http404(_("兑换项目不存在"))
    try:
        reward = reward_get(int(raw))
    except NotFound as exc:
        raise Http404(exc.message) from exc
    try:
        redemption = reward_redeem(
            member=member,
            reward=reward,
            store_id=store.pk,
            actor=staff,
            # The key rendered into the page: a double submit replays the first redemption.
            request_key=request.POST.get("key", "").strip()[:100],
        )
    except DomainError as exc:
        if exc.status == 403:
            raise
        context = _rewards_context(request, member, errors={reward.pk: str(exc.message)})
        return _render(request, context, exc.status if exc.status >= 400 else 422)
    text = _("已为 %(name)s 兑换“%(r)s”，使用 %(n)d 积分") % {
        "name": member.name,
        "r": reward.name,
        "n": reward.points,
    }
    if redemption.coupon is not None:
        text += _("，券码 %(code)s") % {"code": redemption.coupon.code}
    messages.success(request, text)
    return done(request, reverse("console:member_detail", args=[member.pk]))
