from django.contrib import admin
from django.urls import include, path
from django.views.i18n import set_language

from carecard.api.main import api

urlpatterns = [
    path("api/v1/", api.urls),
    path("i18n/setlang/", set_language, name="set_language"),
    path("admin/", admin.site.urls),
    path("", include("carecard.console.urls")),
]
