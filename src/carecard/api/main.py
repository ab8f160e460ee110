"""The API instance (I-1): versioned under /api/v1/, OpenAPI at /api/v1/docs.

Routers live in the apps; this module wires them, the terminal-token authentication and the one
error shape: ``{"code", "message", "errors": [{"field", "code", "message"}]}``.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from carecard.core.errors import DomainError

api = NinjaAPI(
    title="CareCard API",
    version="1",
    description="会员、积分与药学服务接口 — POS/ERP integration API. Authenticate with "
    "`Authorization: Bearer <terminal token>`.",
    urls_namespace="api-v1",
)


def _error(
    request: HttpRequest,
    status: int,
    code: str,
    message: str,
    errors: list[dict[str, str]] | None = None,
) -> HttpResponse:
    return api.create_response(
        request, {"code": code, "message": message, "errors": errors or []}, status=status
    )


@api.exception_handler(DomainError)
def on_domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
    return api.create_response(request, exc.as_dict(), status=exc.status)


@api.exception_handler(NinjaValidationError)
def on_validation_error(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    errors = []
    for err in exc.errors:
        loc = [str(p) for p in err.get("loc", []) if p not in ("body", "query", "path", "payload")]
        errors.append(
            {
                "field": ".".join(loc) or "body",
                "code": err.get("type", "invalid"),
                "message": err.get("msg", ""),
            }
        )
    return _error(
        request, 422, "validation_error", "Request body or parameters are invalid.", errors
    )


@api.exception_handler(AuthenticationError)
def on_auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _error(
        request, 401, "unauthorized", "Missing, unknown, expired or revoked terminal token."
    )


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return _error(request, exc.status_code, "http_error", str(exc))


@api.get("/health", auth=None, tags=["system"], summary="Liveness check")
def health(request: HttpRequest) -> dict[str, str]:
    return {"status": "ok"}
