"""The API instance (I-1): versioned under /api/v1/, OpenAPI at /api/v1/docs.

Routers live in the apps; this module wires them, the terminal-token authentication and the one
error shape: ``{"code", "message", "errors": [{"field", "code", "message"}]}`` (plus ``detail``
for some domain errors, e.g. the existing member of a duplicate phone). Every failure —
validation, authentication, unknown path or method, malformed JSON, an unexpected exception —
answers in that shape.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import URLPattern, URLResolver, re_path
from django.utils.translation import gettext as _
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.operation import Operation
from ninja.renderers import JSONRenderer

from carecard.api.auth import API_AUTH
from carecard.checkout.api import router as checkout_router
from carecard.core.errors import DomainError
from carecard.members.api import router as members_router

logger = logging.getLogger("carecard.api")

DESCRIPTION = """\
CareCard 会员系统对接接口 — the POS / ERP integration API (I-1).

**Authentication 认证.** Every call carries a POS terminal token:
`Authorization: Bearer cct_…`. HQ or a store manager issues the token when registering the
terminal (it is shown once and stored only as a hash); tokens expire, can be rotated and revoked.
An unknown, expired, revoked or rotated-away token answers **401** `unauthorized`. The terminal's
store is the current store: members are enrolled there, and that store's members are shown in
full; members of other stores have their phone and e-mail masked (138****5678), no street address,
and their health data refused (**403** `permission_denied`). ID numbers are always masked for
terminals. A logged-in console session is accepted too (session cookie; unsafe methods need the
`X-CSRFToken` header).

**Errors 错误.** Every error has one shape:
`{"code": "...", "message": "...", "errors": [{"field": "...", "code": "...", "message": "..."}]}`;
some add `detail` (a duplicate phone names the existing `member_no`). Validation errors are
**422** and name each field; unknown members/cards are **404** `member_not_found` /
`card_not_found`; business conflicts are **409**.
"""


class CareCardAPI(NinjaAPI):
    """NinjaAPI whose unknown paths and wrong methods also answer in the one error shape."""

    def get_openapi_operation_id(self, operation: Operation) -> str:
        # The view's own name (member_lookup, card_replace): stable names for generated clients.
        # Names must be unique across routers; tests/api/test_contract.py checks that.
        return str(operation.view_func.__name__)

    def _get_urls(self) -> list[URLResolver | URLPattern]:
        urls = list(super()._get_urls())
        for pattern in urls:
            if isinstance(pattern, URLPattern):
                pattern.callback = _shape_not_allowed(self, pattern.callback)
        not_found = functools.partial(_not_found_view, api=self)
        not_found.csrf_exempt = True  # type: ignore[attr-defined]  # a JSON 404, even for POST
        urls.append(re_path(r"^.*$", not_found))
        return urls


def _shape_not_allowed(api: NinjaAPI, view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            shaped = error_response(
                api,
                request,
                405,
                "method_not_allowed",
                _("不支持该请求方法：%(method)s") % {"method": request.method},
            )
            shaped["Allow"] = response["Allow"]
            return shaped
        return response

    return wrapper


def _not_found_view(request: HttpRequest, api: NinjaAPI) -> HttpResponse:
    return error_response(api, request, 404, "not_found", _("接口不存在"))


class Utf8JSONRenderer(JSONRenderer):
    """Chinese text as UTF-8 rather than \\u escapes: readable in logs and half the bytes."""

    json_dumps_params = {"ensure_ascii": False}


api = CareCardAPI(
    title="CareCard API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api-v1",
    auth=API_AUTH,
    renderer=Utf8JSONRenderer(),
)


def error_response(
    api: NinjaAPI,
    request: HttpRequest,
    status: int,
    code: str,
    message: str,
    errors: list[dict[str, str]] | None = None,
) -> HttpResponse:
    return api.create_response(
        request, {"code": code, "message": message, "errors": errors or []}, status=status
    )


def _error(
    request: HttpRequest,
    status: int,
    code: str,
    message: str,
    errors: list[dict[str, str]] | None = None,
) -> HttpResponse:
    return error_response(api, request, status, code, message, errors)


@api.exception_handler(DomainError)
def on_domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
    return api.create_response(request, exc.as_dict(), status=exc.status)


_LOC_WRAPPERS = ("body", "query", "path", "payload", "header", "cookie", "form")


@api.exception_handler(NinjaValidationError)
def on_validation_error(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    errors = []
    for err in exc.errors:
        loc = [str(p) for p in err.get("loc", []) if p not in _LOC_WRAPPERS]
        errors.append(
            {
                "field": ".".join(loc) or "body",
                "code": str(err.get("type", "invalid")),
                "message": str(err.get("msg", "")),
            }
        )
    return _error(request, 422, "validation_error", _("输入有误，请检查标出的字段"), errors)


@api.exception_handler(AuthenticationError)
def on_auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = _error(request, 401, "unauthorized", _("缺少终端凭证，或凭证无效、已过期、已吊销"))
    response["WWW-Authenticate"] = 'Bearer realm="carecard"'
    return response


_HTTP_CODES = {
    400: "malformed_request",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    429: "throttled",
}


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = _("请求体不是有效的 JSON") if code == "malformed_request" else str(exc)
    return _error(request, exc.status_code, code, message)


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, "not_found", _("对象不存在"))


@api.exception_handler(DjangoPermissionDenied)
def on_permission_denied(request: HttpRequest, exc: DjangoPermissionDenied) -> HttpResponse:
    return _error(request, 403, "permission_denied", _("无权执行该操作"))


@api.exception_handler(Exception)
def on_unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    # Anything reaching here is a bug: log it with the traceback, never leak it to the client.
    logger.exception("Unhandled API error on %s %s", request.method, request.path)
    return _error(request, 500, "internal_error", _("服务器内部错误，已记录，请稍后重试"))


@api.get(
    "/health",
    auth=None,
    tags=["system 系统"],
    summary="Liveness check 服务存活检查",
)
def system_health(request: HttpRequest) -> dict[str, str]:
    return {"status": "ok"}


api.add_router("/", members_router)
api.add_router("/", checkout_router)
