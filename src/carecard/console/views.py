from __future__ import annotations

from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from carecard.chain import services as chain_services


def client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR")


def login_view(request: HttpRequest) -> HttpResponse:
    error = ""
    if request.method == "POST":
        username = request.POST.get("username", "").strip()[:150]
        password = request.POST.get("password", "")
        locked = chain_services.login_check_lock(username=username)
        if locked:
            error = "账号已锁定，请稍后再试"
        else:
            user = authenticate(request, username=username, password=password)
            if user is None:
                until = chain_services.login_record_failure(
                    username=username, ip=client_ip(request)
                )
                error = "账号已锁定，请稍后再试" if until else "用户名或密码错误"
            else:
                login(request, user)
                chain_services.login_record_success(staff=user, ip=client_ip(request))
                return redirect(request.GET.get("next") or "console:home")
    return render(request, "console/login.html", {"error": error})


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("console:login")


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "console/home.html", {})
