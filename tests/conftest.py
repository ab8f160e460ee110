"""Test settings: a fixed field key, a fast password hasher, frozen-time helpers, factories."""

from __future__ import annotations

import pytest

TEST_FIELD_KEY = "q1vQbm0sYHFiyD5B7WRFd6r8nX2ZkC3tJ0pL9aUeM4w="


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.CARECARD_FIELD_KEYS = TEST_FIELD_KEY
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    from carecard.core.crypto import reset_key_cache

    reset_key_cache()


from tests.factories import *  # noqa: E402,F403 — fixtures shared by every test module


@pytest.fixture(autouse=True)
def _fresh_counter_config():
    """The counter caches its rules for a few seconds; every test starts from the database."""
    from carecard.checkout import config

    config.invalidate()
    yield
    config.invalidate()
