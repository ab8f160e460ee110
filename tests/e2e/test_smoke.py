import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_login_page_renders_in_chinese(page):
    page.goto("/login/")
    assert "登录" in page.content()
