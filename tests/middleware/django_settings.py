"""Django settings for the middleware tests only; database names are filled in by fixtures."""

from __future__ import annotations

SECRET_KEY = "shadowguard-tests"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
INSTALLED_APPS = ["tests.middleware.djangoapp"]
MIDDLEWARE = ["shadowguard.middleware.django.ShadowGuardMiddleware"]
ROOT_URLCONF = "tests.middleware.djangoapp.urls"
DATABASES = {
    "default": {"ENGINE": "django.db.backends.postgresql", "NAME": "set-by-fixture"},
    "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": "set-by-fixture"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
