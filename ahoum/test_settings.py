"""Settings for the test suite: the real settings module, plus fast and isolated parts.

The database still comes from DATABASE_URL (SQLite by default, PostgreSQL in CI).
"""

import os
import tempfile

os.environ["READ_DOT_ENV"] = "false"  # a developer's .env must not leak into tests
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("JWT_SECRET_KEY", "test-jwt-secret-key-not-for-production-0123456789")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")

from ahoum.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# On, as in production (one process, so its memory is the shared cache). A test is one
# transaction that never commits, so a change retires cached pages only where the test runs
# the commit callbacks (`django_capture_on_commit_callbacks(execute=True)`).
CATALOGUE_CACHE_SECONDS = 60
# In memory, not files: Django's test environment (setup_test_environment, which pytest-django
# runs) replaces EMAIL_BACKEND with this one whatever is set here, and its outbox is emptied
# before each test. A test that wants the file backend sets it (bookings/tests/test_emails.py).
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Serve static files from the apps (no collectstatic before tests), as in development.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not shared-cache memory: WAL and IMMEDIATE transactions then behave as they do
    # for `make run`, and the concurrency tests exercise them from separate connections.
    # One file per test process, so parallel runs (and pytest-xdist) never share it.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"ahoum-test-{os.getpid()}.sqlite3")
    }

# No CRM notifications unless a test turns them on (crm/tests/conftest.py).
CRM_WEBHOOK_URL = ""
