"""Small helpers shared by console views: permission checks, full page vs HTMX partial, redirects.

NetBox manner: one view serves the full page or, for an HTMX request aimed at one of its
fragments, just that fragment (a Django template partial); a successful HTMX post answers with
``HX-Location`` so the browser loads the next page without a full reload.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django_htmx.http import HttpResponseLocation

from carecard.core.errors import DomainError


def client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR")


def require(request: HttpRequest, perm: str) -> None:
    """403 unless the signed-in staff member holds ``perm``."""
    if not request.user.can(perm):  # type: ignore[union-attr]
        raise PermissionDenied(perm)


def permission(perm: str | None = None) -> Callable[[Callable[..., HttpResponse]], Any]:
    """Login required, then ``perm`` (if given) checked on the server for every request."""

    def decorator(view: Callable[..., HttpResponse]) -> Any:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if perm is not None:
                require(request, perm)
            try:
                return view(request, *args, **kwargs)
            except DomainError as exc:
                if exc.status == 403:
                    raise PermissionDenied(exc.message) from exc
                raise

        return wrapper

    return decorator


def wants_partial(request: HttpRequest, target: str) -> bool:
    """An HTMX request that will swap the element ``#target`` (not a boosted page load)."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted and htmx.target == target


def page(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    partials: dict[str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    """Render the full page, or the partial that the HTMX target asks for.

    ``partials`` maps an element id (the ``hx-target``) to the template partial name.
    """
    for target, name in (partials or {}).items():
        if wants_partial(request, target):
            return render(request, f"{template}#{name}", context, status=status)
    return render(request, template, context, status=status)


def done(request: HttpRequest, url: str) -> HttpResponse:
    """After a successful write: HX-Location for HTMX, a plain redirect otherwise."""
    if getattr(request, "htmx", None):
        return HttpResponseLocation(url)
    return HttpResponseRedirect(url)
