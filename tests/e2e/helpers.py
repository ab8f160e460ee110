"""Shared steps of the browser journeys: sign in and out through the real form, screenshots."""

from __future__ import annotations

import os

from playwright.sync_api import Page, expect

SHOTS = os.environ.get("CARECARD_E2E_SHOTS", "/tmp/e2e-shots")
PASSWORD = "pass-Word-2026"


def shot(page: Page, name: str) -> None:
    """A full-page screenshot of a key step, for a human to look at (not compared)."""
    os.makedirs(SHOTS, exist_ok=True)
    # From the top: a page left scrolled draws the sticky top bar and sidebar mid-image.
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def login(page: Page, username: str, password: str = PASSWORD) -> None:
    """Sign in through the real /login/ form and wait for the dashboard."""
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("logout")).to_be_visible()
    expect(page.get_by_test_id("who")).to_be_visible()


def logout(page: Page) -> None:
    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("login-submit")).to_be_visible()
