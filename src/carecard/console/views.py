"""Console pages for the counter: login, dashboard, member search, enrolment, the member page,
cards, consents and the duplicates review. HQ pages are in ``views_hq``."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from carecard.chain import services as chain_services
from carecard.chain.models import Store
from carecard.console import forms
from carecard.console import selectors as console_selectors
from carecard.console.http import client_ip, done, page, permission
from carecard.core.errors import Conflict, DomainError, ValidationFailed
from carecard.core.roles import Perm, Role
from carecard.members import qr
from carecard.members import selectors as member_selectors
from carecard.members import services as member_services
from carecard.members.models import (
    Card,
    CardKind,
    ChronicCondition,
    ConsentPurpose,
    HealthInterest,
    Member,
)

# --- sign in / out -----------------------------------------------------------------------------


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("console:home")


def login_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated and request.method == "GET":
        return redirect(_safe_next(request))
    error = ""
    username = ""
    if request.method == "POST":
        username = request.POST.get("username", "").strip()[:150]
        password = request.POST.get("password", "")
        locked = chain_services.login_check_lock(username=username)
        if locked:
            error = _("账号已锁定，请稍后再试")
        else:
            user = authenticate(request, username=username, password=password)
            if user is None:
                until = chain_services.login_record_failure(
                    username=username, ip=client_ip(request)
                )
                error = _("账号已锁定，请稍后再试") if until else _("用户名或密码错误")
            else:
                login(request, user)
                chain_services.login_record_success(staff=user, ip=client_ip(request))
                return redirect(_safe_next(request))
    status = 200 if not error else 401
    context = {"error": error, "username": username, "next": request.GET.get("next", "")}
    return render(request, "console/login.html", context, status=status)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        chain_services.logout_record(staff=request.user, ip=client_ip(request))
    logout(request)
    return redirect("console:login")


# --- dashboard ---------------------------------------------------------------------------------


@permission()
def home(request: HttpRequest) -> HttpResponse:
    staff = request.user
    store_id = console_selectors.scope_store_id(staff)
    context: dict[str, Any] = {
        "can_view_members": staff.can(Perm.MEMBER_VIEW),
        "can_enrol": staff.can(Perm.MEMBER_ENROL),
    }
    if context["can_view_members"]:
        recent = console_selectors.recent_members(store_id=store_id, limit=8)
        context.update(
            stats=console_selectors.dashboard(store_id=store_id),
            recent=[_row(m, staff) for m in recent],
            scope_label=staff.home_store.name if store_id else _("全连锁"),
        )
    return render(request, "console/home.html", context)


# --- member search -----------------------------------------------------------------------------

MATCH_LABELS = {
    "phone": gettext_lazy("手机号"),
    "phone_tail": gettext_lazy("手机尾号 + 姓名"),
    "card": gettext_lazy("卡号"),
    "member_no": gettext_lazy("会员号"),
    "qr": gettext_lazy("会员码"),
    "pinyin": gettext_lazy("拼音"),
    "name": gettext_lazy("姓名"),
}


def _row(member: Member, staff: Any, stores: dict[int, Store] | None = None) -> dict[str, Any]:
    """One member as a list row: masked per the actor's role and store scope (G-3)."""
    view = member_selectors.member_view(member=member, actor=staff)
    store = stores.get(member.home_store_id) if stores is not None else member.home_store
    return {"m": member, "phone": view.phone, "store": store}


@permission(Perm.MEMBER_VIEW)
def member_search(request: HttpRequest) -> HttpResponse:
    staff = request.user
    query = request.GET.get("q", "").strip()[:64]
    matched, rows = "", []
    if query:
        matched, found = member_selectors.lookup_members(query)
        stores = Store.objects.in_bulk({m.home_store_id for m in found})
        rows = [_row(m, staff, stores) for m in found]
    else:
        store_id = console_selectors.scope_store_id(staff)
        rows = [
            _row(m, staff) for m in console_selectors.recent_members(store_id=store_id, limit=25)
        ]
    context = {
        "q": query,
        "rows": rows,
        "matched": MATCH_LABELS.get(matched, ""),
    }
    return page(
        request,
        "console/member_search.html",
        context,
        partials={"search-results": "results", "home-results": "results"},
    )


# --- enrolment ---------------------------------------------------------------------------------

ENROL_FIELDS = {*forms.TEXT_KEYS, *forms.LIST_KEYS, *forms.BOOL_KEYS, "store"}


def _enrol_stores(staff: Any) -> list[Store]:
    if staff.is_hq:
        return list(Store.objects.filter(is_active=True).order_by("code"))
    return [staff.home_store] if staff.home_store else []


@permission(Perm.MEMBER_ENROL)
def member_enrol(request: HttpRequest) -> HttpResponse:
    staff = request.user
    stores = _enrol_stores(staff)
    values: dict[str, Any] = {"birthday_calendar": "solar", "acquisition_channel": "in_store"}
    errors = forms.FormErrors()
    duplicate: dict[str, Any] | None = None
    status = 200
    chosen_store = staff.home_store if not staff.is_hq else None
    if request.method == "POST":
        values = forms.enrol_data(request.POST)
        if staff.is_hq:
            store_pk = request.POST.get("store", "")
            chosen_store = next((s for s in stores if str(s.pk) == store_pk), None)
        if chosen_store is None:
            errors.fields["store"] = [_("请选择开卡门店")]
            status = 422
        else:
            try:
                member = member_services.member_enrol(
                    actor=staff, store=chosen_store, data=values, ip=client_ip(request)
                )
            except Conflict as exc:
                status = 409
                duplicate = {"message": exc.message, **exc.detail}
                errors = forms.FormErrors.from_errors(exc.errors, known=ENROL_FIELDS)
            except ValidationFailed as exc:
                status = 422
                errors = forms.FormErrors.from_errors(exc.errors, known=ENROL_FIELDS)
            else:
                messages.success(
                    request,
                    _("已为 %(name)s 建档，会员号 %(no)s")
                    % {"name": member.name, "no": member.member_no},
                )
                return done(request, reverse("console:member_detail", args=[member.pk]))
    context = {
        "values": values,
        "errors": errors,
        "duplicate": duplicate,
        "stores": stores,
        "chosen_store": chosen_store,
        "show_store_choice": staff.is_hq,
        "all_fields": ENROL_FIELDS,
        **forms.member_form_context(values),
    }
    return page(
        request,
        "console/member_enrol.html",
        context,
        partials={"enrol-form": "form"},
        status=status,
    )


# --- member page -------------------------------------------------------------------------------


def _member_or_404(pk: int) -> Member:
    try:
        return member_selectors.member_get(pk)
    except Member.DoesNotExist as exc:
        raise Http404(_("会员不存在")) from exc


def _labels(choices: Any, values: list[str]) -> list[str]:
    names = dict(choices.choices)
    return [str(names.get(v, v)) for v in values]


def _can_view_audit(staff: Any, member: Member) -> bool:
    if staff.can(Perm.AUDIT_VIEW):
        return True
    return staff.role == Role.STORE_MANAGER and staff.home_store_id == member.home_store_id


def _card_context(member: Member) -> dict[str, Any]:
    policy = member_services.policy_get()
    cards = member_selectors.member_cards(member)
    return {
        "cards": cards,
        "lost_fee": policy.lost_card_fee,
        "damaged_fee": policy.damaged_card_fee,
        "has_physical": any(c.kind == CardKind.PHYSICAL for c in cards),
    }


def _consent_rows(member: Member) -> list[dict[str, Any]]:
    current = member_selectors.current_consents(member)
    return [
        {"purpose": value, "label": label, "consent": current.get(value)}
        for value, label in ConsentPurpose.choices
    ]


@permission(Perm.MEMBER_VIEW)
def member_detail(request: HttpRequest, pk: int) -> HttpResponse:
    staff = request.user
    member = _member_or_404(pk)
    view = member_selectors.member_view(
        member=member, actor=staff, with_health=True, ip=client_ip(request)
    )
    can_audit = _can_view_audit(staff, member)
    context: dict[str, Any] = {
        "member": member,
        "view": view,
        "consents": _consent_rows(member),
        "can_cards": staff.can(Perm.CARD_MANAGE) and member.is_live,
        "can_edit": staff.can(Perm.MEMBER_EDIT) and member.is_live,
        "can_audit": can_audit,
        "trail": console_selectors.member_audit_trail(member.pk) if can_audit else [],
        "qr": _qr_context(member) if member.is_live else None,
        "interest_labels": _labels(HealthInterest, member.health_interests),
        "chronic_labels": _labels(ChronicCondition, view.health.get("chronic_conditions", [])),
        **_card_context(member),
    }
    return page(
        request,
        "console/member_detail.html",
        context,
        partials={"cards": "cards", "consents": "consents"},
    )


def _qr_context(member: Member) -> dict[str, Any]:
    from django.conf import settings

    token = qr.make_token(member.pk)
    return {
        "token": token,
        "svg": qr.qr_svg(token),
        "refresh": settings.CARECARD_QR_WINDOW_SECONDS,
    }


@permission(Perm.MEMBER_VIEW)
def member_qr(request: HttpRequest, pk: int) -> HttpResponse:
    member = _member_or_404(pk)
    if not member.is_live:
        raise Http404(_("会员已合并或注销"))
    return render(
        request, "console/member_detail.html#qr", {"member": member, "qr": _qr_context(member)}
    )


@permission(Perm.MEMBER_VIEW)
def member_health(request: HttpRequest, pk: int) -> HttpResponse:
    """The health section alone; 403 for staff outside the member's store (A-2, G-3)."""
    staff = request.user
    member = _member_or_404(pk)
    if not staff.can_for_store(Perm.MEMBER_HEALTH, member.home_store_id):
        raise PermissionDenied(_("无权查看该会员的健康信息"))
    view = member_selectors.member_view(
        member=member, actor=staff, with_health=True, ip=client_ip(request)
    )
    context = {
        "member": member,
        "view": view,
        "chronic_labels": _labels(ChronicCondition, view.health.get("chronic_conditions", [])),
    }
    return page(
        request,
        "console/member_health.html",
        context,
        partials={"health": "health"},
    )


def _editable(staff: Any, member: Member, view: member_selectors.MemberView) -> set[str]:
    keys = {
        "name",
        "gender",
        "birthday",
        "email",
        "address",
        "health_interests",
        "contact_channels",
        "preferred_channel",
        "acquisition_channel",
        "heard_from",
    }
    if staff.can_for_store(Perm.MEMBER_CONTACT, member.home_store_id):
        keys.add("phone")
    if staff.can_for_store(Perm.MEMBER_ID_NUMBER, member.home_store_id):
        keys.add("id_number")
    if view.can_see_health:
        keys.update(forms.HEALTH_KEYS)
    return keys


@permission(Perm.MEMBER_EDIT)
def member_edit(request: HttpRequest, pk: int) -> HttpResponse:
    staff = request.user
    member = _member_or_404(pk)
    if not member.is_live:
        raise Http404(_("会员已合并或注销"))
    view = member_selectors.member_view(
        member=member,
        actor=staff,
        with_health=staff.can_for_store(Perm.MEMBER_HEALTH, member.home_store_id),
        ip=client_ip(request),
    )
    editable = _editable(staff, member, view)
    values = forms.member_values(
        member, phone=view.phone, id_number=view.id_number, health=view.health
    )
    errors = forms.FormErrors()
    status = 200
    if request.method == "POST":
        data = forms.update_data(request.POST, editable=editable)
        values = {**values, **forms.enrol_data(request.POST)}
        try:
            member_services.member_update(
                actor=staff, member=member, data=data, ip=client_ip(request)
            )
        except (Conflict, ValidationFailed) as exc:
            status = 409 if isinstance(exc, Conflict) else 422
            errors = forms.FormErrors.from_errors(exc.errors, known=editable)
            if not exc.errors:
                errors.general.append(exc.message)
        except DomainError as exc:
            if exc.status == 403:
                raise
            status = exc.status
            errors.general.append(exc.message)
        else:
            messages.success(request, _("会员资料已保存"))
            return done(request, reverse("console:member_detail", args=[member.pk]))
    context = {
        "member": member,
        "view": view,
        "values": values,
        "errors": errors,
        "editable": editable,
        **forms.member_form_context(values),
    }
    return page(
        request, "console/member_edit.html", context, partials={"edit-form": "form"}, status=status
    )


def _member_action_error(
    request: HttpRequest, member: Member, message: str, status: int
) -> HttpResponse:
    """Re-render the cards block with the service's refusal shown above it."""
    if getattr(request, "htmx", None):
        context = {"member": member, "card_error": message, "can_cards": True}
        context.update(_card_context(member))
        return render(request, "console/member_detail.html#cards", context, status=status)
    messages.error(request, message)
    return redirect("console:member_detail", pk=member.pk)


@require_POST
@permission(Perm.CARD_MANAGE)
def card_lost(request: HttpRequest, pk: int, card_pk: int) -> HttpResponse:
    member = _member_or_404(pk)
    card = get_object_or_404(Card, pk=card_pk, member_id=member.pk)
    try:
        member_services.card_report_lost(actor=request.user, card=card, ip=client_ip(request))
    except DomainError as exc:
        if exc.status == 403:
            raise
        return _member_action_error(request, member, exc.message, exc.status)
    messages.success(request, _("卡 %(no)s 已挂失冻结") % {"no": card.number})
    return done(request, reverse("console:member_detail", args=[member.pk]))


@require_POST
@permission(Perm.CARD_MANAGE)
def card_replace(request: HttpRequest, pk: int, card_pk: int) -> HttpResponse:
    member = _member_or_404(pk)
    card = get_object_or_404(Card, pk=card_pk, member_id=member.pk)
    staff = request.user
    try:
        new = member_services.card_replace(
            actor=staff,
            card=card,
            new_number=request.POST.get("new_number", "").strip(),
            reason=request.POST.get("reason", "lost"),
            store=staff.home_store,
            ip=client_ip(request),
        )
    except ValidationFailed as exc:
        message = "；".join(str(e.message) for e in exc.errors) or exc.message
        return _member_action_error(request, member, message, 422)
    except DomainError as exc:
        if exc.status == 403:
            raise
        return _member_action_error(request, member, exc.message, exc.status)
    messages.success(
        request,
        _("已补发新卡 %(no)s，收取工本费 ¥%(fee)s") % {"no": new.number, "fee": new.fee},
    )
    return done(request, reverse("console:member_detail", args=[member.pk]))


@require_POST
@permission(Perm.MEMBER_EDIT)
def consent_change(request: HttpRequest, pk: int) -> HttpResponse:
    member = _member_or_404(pk)
    if not member.is_live:
        raise Http404(_("会员已合并或注销"))
    purpose = request.POST.get("purpose", "")
    granted = forms.post_bool(request.POST, "granted")
    try:
        member_services.consent_set(
            actor=request.user,
            member=member,
            purpose=purpose,
            granted=granted,
            channel="counter",
            ip=client_ip(request),
        )
    except ValidationFailed as exc:
        messages.error(request, "；".join(str(e.message) for e in exc.errors))
    else:
        messages.success(request, _("授权已更新"))
    return done(request, reverse("console:member_detail", args=[member.pk]) + "#consents")


# --- duplicates review -------------------------------------------------------------------------


def _pair_visible(staff: Any, a: Member, b: Member) -> bool:
    """HQ reviews the whole chain; a store manager the pairs that involve their store."""
    return staff.is_hq or staff.home_store_id in (a.home_store_id, b.home_store_id)


@permission(Perm.MEMBER_MERGE)
def duplicates(request: HttpRequest) -> HttpResponse:
    staff = request.user
    pairs = [
        p for p in member_selectors.likely_duplicates(limit=200) if _pair_visible(staff, p.a, p.b)
    ]
    rows = [
        {
            "reason": p.reason,
            "a": _row(p.a, staff),
            "b": _row(p.b, staff),
            "key": f"{p.a.pk}-{p.b.pk}",
        }
        for p in pairs[:100]
    ]
    return page(request, "console/duplicates.html", {"pairs": rows}, partials={"pairs": "pairs"})


def _pair_from_post(request: HttpRequest) -> tuple[Member, Member]:
    try:
        ids = [int(request.POST.get("a", "")), int(request.POST.get("b", ""))]
    except ValueError as exc:
        raise Http404 from exc
    found = Member.objects.in_bulk(ids)
    if len(found) != 2:
        raise Http404(_("会员不存在"))
    a, b = found[ids[0]], found[ids[1]]
    if not _pair_visible(request.user, a, b):
        raise PermissionDenied
    return a, b


@require_POST
@permission(Perm.MEMBER_MERGE)
def duplicate_merge(request: HttpRequest) -> HttpResponse:
    a, b = _pair_from_post(request)
    survivor_pk = request.POST.get("survivor", "")
    if survivor_pk not in (str(a.pk), str(b.pk)):
        messages.error(request, _("请选择保留哪一位会员"))
        return done(request, reverse("console:duplicates"))
    survivor, absorbed = (a, b) if survivor_pk == str(a.pk) else (b, a)
    try:
        member_services.member_merge(
            actor=request.user, survivor=survivor, absorbed=absorbed, ip=client_ip(request)
        )
    except DomainError as exc:
        if exc.status == 403:
            raise
        messages.error(request, exc.message)
        return done(request, reverse("console:duplicates"))
    messages.success(
        request,
        _("已将 %(absorbed)s 合并到 %(survivor)s")
        % {"absorbed": absorbed.member_no, "survivor": survivor.member_no},
    )
    return done(request, reverse("console:member_detail", args=[survivor.pk]))


@require_POST
@permission(Perm.MEMBER_MERGE)
def duplicate_dismiss(request: HttpRequest) -> HttpResponse:
    a, b = _pair_from_post(request)
    member_services.duplicate_dismiss(actor=request.user, a=a, b=b)
    messages.success(request, _("已标记为不同的人"))
    return done(request, reverse("console:duplicates"))
