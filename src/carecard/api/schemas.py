"""Schemas shared by every router: the one error shape of the API."""

from __future__ import annotations

from ninja import Field, Schema


class ErrorItemOut(Schema):
    field: str
    code: str
    message: str


class ErrorOut(Schema):
    """The one error shape of the API."""

    code: str = Field(..., examples=["validation_error"])
    message: str
    errors: list[ErrorItemOut] = []
    detail: dict[str, object] | None = None
