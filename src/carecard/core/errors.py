"""Typed domain errors with stable codes.

Services raise these; the API maps them once to
``{code, message, errors: [{field, code, message}]}`` and the console maps them to form
errors. Messages are translatable (Chinese for staff).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FieldError:
    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": str(self.message)}


@dataclass
class DomainError(Exception):
    """A business rule refused the operation. ``status`` is the HTTP status the API answers."""

    code: str
    message: str
    errors: list[FieldError] = field(default_factory=list)
    status: int = 400
    detail: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "code": self.code,
            "message": str(self.message),
            "errors": [e.as_dict() for e in self.errors],
        }
        if self.detail:
            body["detail"] = self.detail
        return body


class ValidationFailed(DomainError):
    """Input failed validation; ``errors`` names every bad field."""

    def __init__(self, errors: list[FieldError], message: str = "") -> None:
        from django.utils.translation import gettext as _

        super().__init__(
            code="validation_error",
            message=message or _("输入有误，请检查标出的字段"),
            errors=errors,
            status=422,
        )


class NotFound(DomainError):
    def __init__(self, what: str, message: str) -> None:
        super().__init__(code=f"{what}_not_found", message=message, status=404)


class PermissionDenied(DomainError):
    def __init__(self, message: str, code: str = "permission_denied") -> None:
        super().__init__(code=code, message=message, status=403)


class Conflict(DomainError):
    def __init__(self, code: str, message: str, **kwargs: object) -> None:
        super().__init__(code=code, message=message, status=409, **kwargs)  # type: ignore[arg-type]
