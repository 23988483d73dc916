"""Settings of the example order service (not for production as they stand)."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "orders_service.urls"
INSTALLED_APPS = ["orders"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

MIDDLEWARE = [
    # First, so that everything after it (and the whole response) runs in the shadow scope.
    "shadowguard.middleware.django.ShadowGuardMiddleware",
    "django.middleware.common.CommonMiddleware",
]

# ORDERS_DATABASE_URL-style settings kept simple: SQLite by default, PostgreSQL when
# ORDERS_PG_NAME is set (psycopg 3).
if os.environ.get("ORDERS_PG_NAME"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["ORDERS_PG_NAME"],
            "USER": os.environ.get("ORDERS_PG_USER", "postgres"),
            "HOST": os.environ.get("ORDERS_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("ORDERS_PG_PORT", "5432"),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("ORDERS_SQLITE_PATH", str(BASE_DIR / "orders.sqlite3")),
        }
    }

# shadowguard settings (Settings fields); the environment (SHADOW_MODE, ...) also applies.
SHADOWGUARD = {"marker_header": "x-shadow-request"}
