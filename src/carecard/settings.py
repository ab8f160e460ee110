"""Django settings for CareCard.

One settings module, driven by environment variables so that the same code runs the embedded demo
(SQLite under ./var) and a production deployment (PostgreSQL via DATABASE_URL).
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent
VAR_DIR = Path(os.environ.get("CARECARD_VAR_DIR", Path.cwd() / "var")).resolve()

DEBUG = os.environ.get("CARECARD_DEBUG", "0") == "1"
SECRET_KEY = os.environ.get("CARECARD_SECRET_KEY", "")
if not SECRET_KEY:
    # Only the demo and tests run without a configured secret; `carecard serve` refuses to.
    SECRET_KEY = "carecard-insecure-demo-key-change-me"  # noqa: S105
ALLOWED_HOSTS = [h for h in os.environ.get("CARECARD_ALLOWED_HOSTS", "*").split(",") if h]
CSRF_TRUSTED_ORIGINS = [
    o for o in os.environ.get("CARECARD_CSRF_TRUSTED_ORIGINS", "").split(",") if o
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_tasks_db",
    "ninja",  # serves Swagger UI for /api/v1/docs from its wheel, never a CDN
    "carecard.core",
    "carecard.chain",
    "carecard.catalog",
    "carecard.members",
    "carecard.loyalty",
    "carecard.coupons",
    "carecard.wallet",
    "carecard.checkout",
    "carecard.api",
    "carecard.console",
    "carecard.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "carecard.urls"
WSGI_APPLICATION = "carecard.wsgi.application"
ASGI_APPLICATION = "carecard.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "carecard.console.context.console",
            ],
        },
    },
]

_default_sqlite = f"sqlite:///{VAR_DIR / 'carecard.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(os.environ.get("DATABASE_URL", _default_sqlite))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers queue on a file lock instead of SQLite's sleeping busy handler (core/sqlite).
    DATABASES["default"]["ENGINE"] = "carecard.core.sqlite"
    DATABASES["default"]["OPTIONS"] = {
        # IMMEDIATE takes the write lock at BEGIN, so two writers queue instead of deadlocking.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
            "PRAGMA busy_timeout=20000; PRAGMA cache_size=-65536; PRAGMA mmap_size=268435456;"
        ),
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Server-side parameters, and a threshold, let psycopg prepare the statements a
    # connection repeats (every sale runs the same dozen): PostgreSQL then skips parsing and
    # planning them, about 40 % of a commit's database time. Django passes psycopg no
    # threshold unless one is given here, which means never prepare. Behind a
    # transaction-pooling pgbouncer older than 1.21 set CARECARD_PG_PREPARE=0
    # (docs/operations.md).
    if os.environ.get("CARECARD_PG_PREPARE", "1") != "0":
        options = DATABASES["default"].setdefault("OPTIONS", {})
        options["server_side_binding"] = True
        options["prepare_threshold"] = int(os.environ.get("CARECARD_PG_PREPARE_AFTER", "5"))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "chain.Staff"
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:home"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 8},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Sessions and cookies: secure by default; the demo on plain http turns the Secure flag off.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 8 * 3600  # one shift
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_COOKIE_SAMESITE = "Lax"
_https = os.environ.get("CARECARD_HTTPS", "0") == "1"
SESSION_COOKIE_SECURE = _https
CSRF_COOKIE_SECURE = _https
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if _https:
    SECURE_HSTS_SECONDS = 31536000
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("简体中文")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]

TASKS = {
    "default": {
        "BACKEND": os.environ.get("CARECARD_TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("CARECARD_LOG_LEVEL", "WARNING")},
}

# --- CareCard settings -----------------------------------------------------------------------
# Key for field encryption (ID numbers, health data): comma-separated base64 keys, newest first,
# so keys can be rotated. The demo writes one under ./var and says so.
CARECARD_FIELD_KEYS = os.environ.get("CARECARD_FIELD_KEYS", "")
CARECARD_FIELD_KEY_FILE = VAR_DIR / "field.key"
CARECARD_LOGIN_MAX_FAILURES = int(os.environ.get("CARECARD_LOGIN_MAX_FAILURES", "5"))
CARECARD_LOGIN_LOCK_MINUTES = int(os.environ.get("CARECARD_LOGIN_LOCK_MINUTES", "15"))
CARECARD_QR_WINDOW_SECONDS = int(os.environ.get("CARECARD_QR_WINDOW_SECONDS", "60"))
CARECARD_DEFAULT_REGION = os.environ.get("CARECARD_DEFAULT_REGION", "CN")
