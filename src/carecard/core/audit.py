"""Writing audit entries (G-4). Call inside the service's transaction."""

from __future__ import annotations

from typing import Any

from carecard.core.models import AuditAction, AuditEntry


def audit(
    *,
    action: str,
    actor: Any = None,
    member_id: int | None = None,
    store_id: int | None = None,
    target: str = "",
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
    terminal_id: int | None = None,
) -> AuditEntry:
    is_user = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEntry.objects.create(
        actor=actor if is_user else None,
        actor_label=(actor.get_username() if is_user else (str(actor) if actor else "")),
        terminal_id=terminal_id,
        action=action,
        member_id=member_id,
        store_id=store_id,
        target=target,
        detail=detail or {},
        ip=ip,
    )


__all__ = ["AuditAction", "audit"]
