from django.urls import path

from carecard.console import views, views_counter, views_hq, views_loyalty, views_rules

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("members/", views.member_search, name="member_search"),
    path("members/new/", views.member_enrol, name="member_enrol"),
    path("members/<int:pk>/", views.member_detail, name="member_detail"),
    path("members/<int:pk>/edit/", views.member_edit, name="member_edit"),
    path("members/<int:pk>/health/", views.member_health, name="member_health"),
    path("members/<int:pk>/qr/", views.member_qr, name="member_qr"),
    path("members/<int:pk>/consents/", views.consent_change, name="member_consent"),
    path("members/<int:pk>/points/", views_loyalty.member_points, name="member_points"),
    path(
        "members/<int:pk>/points/adjust/",
        views_loyalty.member_points_adjust,
        name="member_points_adjust",
    ),
    path("members/<int:pk>/tier/", views_loyalty.member_tier, name="member_tier"),
    path("members/<int:pk>/sales/", views_loyalty.member_sales, name="member_sales"),
    path("members/<int:pk>/cards/<int:card_pk>/lost/", views.card_lost, name="member_card_lost"),
    path(
        "members/<int:pk>/cards/<int:card_pk>/replace/",
        views.card_replace,
        name="member_card_replace",
    ),
    path("counter/", views_counter.counter, name="counter"),
    path("sales/<int:pk>/", views_counter.sale_receipt, name="sale_receipt"),
    path("sales/<int:pk>/return/", views_counter.sale_return, name="sale_return"),
    path("duplicates/", views.duplicates, name="duplicates"),
    path("duplicates/merge/", views.duplicate_merge, name="duplicate_merge"),
    path("duplicates/dismiss/", views.duplicate_dismiss, name="duplicate_dismiss"),
    path("stores/", views_hq.stores, name="stores"),
    path("stores/<int:pk>/", views_hq.store_detail, name="store_detail"),
    path("staff/", views_hq.staff_list, name="staff"),
    path("staff/new/", views_hq.staff_new, name="staff_new"),
    path("staff/<int:pk>/", views_hq.staff_edit, name="staff_edit"),
    path("terminals/", views_hq.terminals, name="terminals"),
    path("terminals/<int:pk>/rotate/", views_hq.terminal_rotate, name="terminal_rotate"),
    path("terminals/<int:pk>/revoke/", views_hq.terminal_revoke, name="terminal_revoke"),
    path("rules/", views_rules.rules, name="rules"),
    path("rules/preset/", views_rules.rules_preset, name="rules_preset"),
    path("audit/", views_hq.audit_log, name="audit"),
]
