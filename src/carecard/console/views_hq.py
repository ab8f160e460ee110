"""HQ console pages: stores and trading-area zones, staff and roles, POS terminals, audit log."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from carecard.chain import services as chain_services
from carecard.chain.models import PosTerminal, Staff, Store
from carecard.console import forms
from carecard.console import selectors as console_selectors
from carecard.console.http import done, page, permission
from carecard.core.errors import DomainError, ValidationFailed
from carecard.core.models import AuditAction
from carecard.core.roles import HQ_ROLES, Perm, Role
from carecard.members.models import Member

# --- stores and zones --------------------------------------------------------------------------


@permission(Perm.CHAIN_MANAGE)
def stores(request: HttpRequest) -> HttpResponse:
    rows = console_selectors.store_list()
    totals = {
        "members": sum(s.member_count for s in rows),
        "households": sum(s.household_count for s in rows),
        "staff": sum(s.staff_count for s in rows),
    }
    return page(request, "console/stores.html", {"stores": rows, "totals": totals})


def _zone_input(post: Any) -> tuple[dict[str, Any], forms.FormErrors]:
    errors = forms.FormErrors()
    name = post.get("name", "").strip()
    if not name:
        errors.fields["name"] = [_("请填写商圈名称")]
    elif len(name) > 100:
        errors.fields["name"] = [_("不能超过%(n)d个字") % {"n": 100}]
    raw_households = post.get("households", "").strip() or "0"
    households = 0
    if not raw_households.isdigit() or int(raw_households) > 10_000_000:
        errors.fields["households"] = [_("户数应为非负整数")]
    else:
        households = int(raw_households)
    district = post.get("district", "").strip()[:32]
    keywords = [k for k in re.split(r"[,，;；、\s]+", post.get("keywords", "")) if k]
    values = {
        "name": name,
        "households": households if "households" not in errors.fields else raw_households,
        "district": district,
        "keywords": keywords,
    }
    return values, errors


@permission(Perm.CHAIN_MANAGE)
def store_detail(request: HttpRequest, pk: int) -> HttpResponse:
    store = get_object_or_404(Store.objects.select_related("region"), pk=pk)
    values: dict[str, Any] = {"district": store.district}
    errors = forms.FormErrors()
    status = 200
    if request.method == "POST":
        values, errors = _zone_input(request.POST)
        if not errors:
            chain_services.zone_upsert(
                store=store,
                name=values["name"],
                district=values["district"],
                keywords=values["keywords"],
                households=values["households"],
            )
            messages.success(request, _("商圈“%(name)s”已保存") % {"name": values["name"]})
            return done(request, reverse("console:store_detail", args=[store.pk]))
        status = 422
    zones = console_selectors.store_zones(store)
    context = {
        "store": store,
        "zones": zones,
        "unzoned": console_selectors.store_unzoned_members(store),
        "zone_values": values,
        "zone_keywords": "、".join(values.get("keywords", [])),
        "errors": errors,
        "staff_rows": console_selectors.staff_list(store_id=store.pk),
        "stats": console_selectors.dashboard(store_id=store.pk),
    }
    return page(
        request,
        "console/store_detail.html",
        context,
        partials={"zone-form": "zone_form"},
        status=status,
    )


# --- staff -------------------------------------------------------------------------------------


def _active_stores() -> list[Store]:
    return list(Store.objects.filter(is_active=True).order_by("code"))


@permission(Perm.STAFF_MANAGE)
def staff_list(request: HttpRequest) -> HttpResponse:
    role = request.GET.get("role", "")
    store_pk = request.GET.get("store", "")
    q = request.GET.get("q", "").strip()[:50]
    rows = console_selectors.staff_list(
        store_id=int(store_pk) if store_pk.isdigit() else None,
        role=role if role in Role.values else "",
        q=q,
    )
    context = {
        "rows": rows,
        "roles": forms.choices(Role, role, include_blank=True),
        "stores": _active_stores(),
        "store_pk": store_pk,
        "q": q,
    }
    return page(request, "console/staff_list.html", context, partials={"staff-table": "table"})


def _store_from_post(post: Any) -> Store | None:
    pk = post.get("home_store", "")
    return Store.objects.filter(pk=pk).first() if pk.isdigit() else None


STAFF_FIELDS = {
    "username",
    "password",
    "role",
    "home_store",
    "display_name",
    "staff_code",
    "mobile",
}


@permission(Perm.STAFF_MANAGE)
def staff_new(request: HttpRequest) -> HttpResponse:
    values: dict[str, Any] = {"role": Role.CLERK}
    errors = forms.FormErrors()
    status = 200
    if request.method == "POST":
        values = {k: request.POST.get(k, "").strip() for k in STAFF_FIELDS - {"password"}}
        try:
            staff = chain_services.staff_create(
                actor=request.user,
                username=values["username"],
                password=request.POST.get("password", ""),
                role=values["role"],
                display_name=values["display_name"][:50],
                home_store=_store_from_post(request.POST),
                staff_code=values["staff_code"][:32],
                mobile=values["mobile"][:20],
            )
        except ValidationFailed as exc:
            status = 422
            errors = forms.FormErrors.from_errors(exc.errors, known=STAFF_FIELDS)
        else:
            messages.success(request, _("已新增员工 %(name)s") % {"name": staff})
            return done(request, reverse("console:staff"))
    context = {
        "values": values,
        "errors": errors,
        "roles": forms.staff_role_choices(values.get("role", "")),
        "stores": _active_stores(),
        "hq_roles": sorted(HQ_ROLES),
    }
    return page(
        request, "console/staff_form.html", context, partials={"staff-form": "form"}, status=status
    )


@permission(Perm.STAFF_MANAGE)
def staff_edit(request: HttpRequest, pk: int) -> HttpResponse:
    member = get_object_or_404(Staff.objects.select_related("home_store"), pk=pk)
    errors = forms.FormErrors()
    status = 200
    values: dict[str, Any] = {
        "role": member.role,
        "home_store": str(member.home_store_id or ""),
        "is_active": member.is_active,
    }
    if request.method == "POST":
        values = {
            "role": request.POST.get("role", ""),
            "home_store": request.POST.get("home_store", ""),
            "is_active": forms.post_bool(request.POST, "is_active"),
        }
        if member.pk == request.user.pk and (
            values["role"] != member.role or not values["is_active"]
        ):
            errors.general.append(_("不能修改自己的角色或停用自己的账号"))
            status = 422
        else:
            try:
                chain_services.staff_set_role(
                    actor=request.user,
                    staff=member,
                    role=values["role"],
                    home_store=_store_from_post(request.POST),
                    is_active=values["is_active"],
                )
            except ValidationFailed as exc:
                status = 422
                errors = forms.FormErrors.from_errors(exc.errors, known=STAFF_FIELDS)
            else:
                messages.success(request, _("已更新 %(name)s 的角色与门店") % {"name": member})
                return done(request, reverse("console:staff"))
    context = {
        "target": member,
        "values": values,
        "errors": errors,
        "roles": forms.staff_role_choices(values["role"]),
        "stores": _active_stores(),
    }
    return page(
        request, "console/staff_edit.html", context, partials={"staff-form": "form"}, status=status
    )


# --- POS terminals -----------------------------------------------------------------------------


def _terminal_stores(staff: Any) -> list[Store]:
    if staff.is_hq:
        return _active_stores()
    return [staff.home_store] if staff.home_store else []


def _terminal_page(
    request: HttpRequest,
    *,
    issued: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
    errors: forms.FormErrors | None = None,
    status: int = 200,
) -> HttpResponse:
    staff = request.user
    context = {
        "terminals": console_selectors.terminal_list(
            store_id=console_selectors.scope_store_id(staff)
        ),
        "stores": _terminal_stores(staff),
        "issued": issued,
        "values": values or {"valid_days": "365"},
        "errors": errors or forms.FormErrors(),
    }
    return page(request, "console/terminals.html", context, status=status)


@permission(Perm.TERMINAL_MANAGE)
def terminals(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _terminal_page(request)
    staff = request.user
    values = {k: request.POST.get(k, "").strip() for k in ("store", "code", "name", "valid_days")}
    errors = forms.FormErrors()
    store = next((s for s in _terminal_stores(staff) if str(s.pk) == values["store"]), None)
    if store is None:
        errors.fields["store"] = [_("请选择门店")]
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", values["code"]):
        errors.fields["code"] = [_("终端编号为1-32位字母、数字、-或_")]
    valid_days: int | None = None
    if values["valid_days"]:
        if not values["valid_days"].isdigit() or not 1 <= int(values["valid_days"]) <= 3650:
            errors.fields["valid_days"] = [_("有效天数应为1-3650，留空为长期")]
        else:
            valid_days = int(values["valid_days"])
    if errors:
        return _terminal_page(request, values=values, errors=errors, status=422)
    assert store is not None
    try:
        terminal, token = chain_services.terminal_create(
            actor=staff,
            store=store,
            code=values["code"],
            name=values["name"][:100],
            valid_days=valid_days,
        )
    except DomainError as exc:
        if exc.status == 403:
            raise PermissionDenied(exc.message) from exc
        errors.fields["code"] = [exc.message]
        return _terminal_page(request, values=values, errors=errors, status=exc.status)
    return _terminal_page(request, issued={"terminal": terminal, "token": token})


def _terminal_for(request: HttpRequest, pk: int) -> PosTerminal:
    terminal = get_object_or_404(PosTerminal.objects.select_related("store"), pk=pk)
    staff = request.user
    if not staff.is_hq and terminal.store_id != staff.home_store_id:
        raise PermissionDenied(_("无权管理该门店的终端"))
    return terminal


@require_POST
@permission(Perm.TERMINAL_MANAGE)
def terminal_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    terminal = _terminal_for(request, pk)
    token = chain_services.terminal_rotate_token(actor=request.user, terminal=terminal)
    return _terminal_page(request, issued={"terminal": terminal, "token": token, "rotated": True})


@require_POST
@permission(Perm.TERMINAL_MANAGE)
def terminal_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    terminal = _terminal_for(request, pk)
    chain_services.terminal_revoke(actor=request.user, terminal=terminal)
    messages.success(request, _("终端 %(code)s 的凭证已吊销") % {"code": terminal.code})
    return done(request, reverse("console:terminals"))


# --- audit log ---------------------------------------------------------------------------------


def _parse_day(raw: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


@permission(Perm.AUDIT_VIEW)
def audit_log(request: HttpRequest) -> HttpResponse:
    get = request.GET
    action = get.get("action", "")
    action = action if action in AuditAction.values else ""
    member_q = get.get("member", "").strip()[:32]
    member_id: int | None = None
    member_missing = False
    if member_q:
        found = Member.objects.filter(member_no=member_q).values_list("pk", flat=True).first()
        if found is None and member_q.isdigit() and len(member_q) < 12:
            found = int(member_q)
        member_id = found
        member_missing = found is None
    store_pk = get.get("store", "")
    date_from, date_to = _parse_day(get.get("from", "")), _parse_day(get.get("to", ""))
    page_no = int(get["page"]) if get.get("page", "").isdigit() else 1
    entries: list[Any] = []
    has_next = False
    if not member_missing:
        entries, has_next = console_selectors.audit_entries(
            action=action,
            member_id=member_id,
            store_id=int(store_pk) if store_pk.isdigit() else None,
            date_from=date_from,
            date_to=date_to,
            page=page_no,
        )
    members = console_selectors.members_by_ids([e.member_id for e in entries if e.member_id])
    stores = Store.objects.in_bulk({e.store_id for e in entries if e.store_id})
    rows = [
        {"e": e, "member": members.get(e.member_id), "store": stores.get(e.store_id)}
        for e in entries
    ]
    query = get.copy()
    query.pop("page", None)
    context = {
        "rows": rows,
        "actions": forms.choices(AuditAction, action, include_blank=True),
        "stores": _active_stores(),
        "store_pk": store_pk,
        "member_q": member_q,
        "member_missing": member_missing,
        "date_from": date_from.isoformat() if date_from else "",
        "date_to": date_to.isoformat() if date_to else "",
        "page_no": page_no,
        "has_next": has_next,
        "query": query.urlencode(),
    }
    return page(request, "console/audit.html", context, partials={"audit-table": "table"})
