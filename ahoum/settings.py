"""Ahoum settings: one module, driven by environment variables (and an optional `.env`).

Every variable read here is documented in `.env.example`. Development defaults keep
`make run` zero-setup (SQLite, DEBUG on); production (`DEBUG=False`) refuses to start
with an unsafe secret.
"""

import re
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if env.bool("READ_DOT_ENV", default=True) and (BASE_DIR / ".env").is_file():
    # Values already present in the environment win over the file.
    env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)

# The value shipped in .env.example (and the original project's): never valid in production.
EXAMPLE_SECRET_KEYS = {"", "supersecretkey", "change-me", "jwtsecretkey"}
DEVELOPMENT_SECRET_KEY = "django-insecure-development-only-key-do-not-deploy-4f8a1c"

SECRET_KEY = env.str("SECRET_KEY", default="")
if SECRET_KEY in EXAMPLE_SECRET_KEYS or SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is empty or the example value. Set a long random SECRET_KEY "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))') or run with DEBUG=True."
        )
    SECRET_KEY = SECRET_KEY or DEVELOPMENT_SECRET_KEY

# PyJWT warns about HMAC keys under 32 bytes; production requires a dedicated one.
JWT_SECRET_KEY = env.str("JWT_SECRET_KEY", default="")
if len(JWT_SECRET_KEY.encode()) < 32 or JWT_SECRET_KEY in EXAMPLE_SECRET_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured("JWT_SECRET_KEY must be set to a random value of 32+ bytes.")
    JWT_SECRET_KEY = SECRET_KEY + "-jwt"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "ahoum.apps.AhoumAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "django_filters",
    "corsheaders",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks",
    "django_tasks_db",
    "djstripe",
    "accounts",
    "events",
    "bookings",
    "facilitators",
    "crm",
    # Last: the project's own commands (run_worker, sweep) and its admin site, over every app.
    "ahoum",
]

MIDDLEWARE = [
    "ahoum.logs.RequestLogMiddleware",
    # Before anything that can answer (CommonMiddleware, whitenoise), so those answers carry
    # the CORS headers too; it answers preflight requests itself.
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "ahoum.parsers.NestingLimitMiddleware",  # dj-stripe's webhook parses JSON its own way
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",  # allauth requires it (Google login)
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ahoum.urls"
WSGI_APPLICATION = "ahoum.wsgi.application"
AUTH_USER_MODEL = "accounts.User"

# API paths accept both `/events` and `/events/` for every method (the routes make the
# slash optional), so CommonMiddleware must never redirect: a redirected POST loses its body.
APPEND_SLASH = False

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
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# Longest one SQL statement may run, in milliseconds (PostgreSQL's statement_timeout); the
# request then answers 503 `timeout`. 0: no limit. gunicorn.conf.py sets it in web processes
# (WEB_STATEMENT_TIMEOUT_MS, well under the worker timeout); the task worker, the scheduler and
# migrations, whose statements may rightly run longer, have no limit unless it is set for them.
DATABASE_STATEMENT_TIMEOUT_MS = env.int("DATABASE_STATEMENT_TIMEOUT_MS", default=0)
if DATABASE_STATEMENT_TIMEOUT_MS < 0:
    raise ImproperlyConfigured("DATABASE_STATEMENT_TIMEOUT_MS must be 0 (no limit) or more.")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the writer; IMMEDIATE takes the write lock at BEGIN so
    # concurrent writers queue on busy_timeout instead of failing with "database is locked"
    # when a read transaction tries to upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("SQLITE_TIMEOUT_SECONDS", default=20),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Added to what DATABASE_URL's query string sets (sslmode=require, ...).
    database_options = DATABASES["default"].setdefault("OPTIONS", {})
    if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
        # Server-side binding lets psycopg prepare a statement the 5th time a connection runs
        # it; PostgreSQL then skips parsing and planning it (bench/README.md).
        database_options.update({"server_side_binding": True, "prepare_threshold": 5})
    if DATABASE_STATEMENT_TIMEOUT_MS:
        # A libpq startup option: every connection has it before its first query. (Behind
        # PgBouncer, which refuses or drops startup options, set statement_timeout on the web
        # processes' database role instead, and this to 0.)
        startup = database_options.get("options", "")
        statement_timeout = f"-c statement_timeout={DATABASE_STATEMENT_TIMEOUT_MS}"
        database_options["options"] = f"{startup} {statement_timeout}".strip()
# Transactions belong to services (see CONVENTIONS.md), not to requests.
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# How long a service waits for a row lock before answering "try again" (PostgreSQL).
LOCK_TIMEOUT_MS = env.int("LOCK_TIMEOUT_MS", default=5000)

# --- Cache (throttles) ----------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            # Apart from other sites (or test runs) sharing one Redis database.
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="ahoum"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The catalogue's pages are cached until anything they show changes (events/cache.py). Only
# with a cache all processes share: each process's own memory would miss other processes'
# changes, so without REDIS_URL the default is 0 (off).
CATALOGUE_CACHE_SECONDS = env.int("CATALOGUE_CACHE_SECONDS", default=60 if REDIS_URL else 0)
if CATALOGUE_CACHE_SECONDS > 0 and not REDIS_URL and not DEBUG:
    raise ImproperlyConfigured(
        "CATALOGUE_CACHE_SECONDS needs REDIS_URL: a per-process cache would serve pages other "
        "processes' bookings changed. Set REDIS_URL, or CATALOGUE_CACHE_SECONDS=0."
    )

# --- Passwords ------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files (the admin's and Swagger UI's), served by whitenoise --------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Security (production) ------------------------------------------------------------------
# Heroku and Render terminate TLS at their router and say so in X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$"]  # load balancers probe over plain HTTP
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Clients behind this many proxies: DRF throttles take the address the nearest proxy appended
# to X-Forwarded-For. 0 (no proxy): the header is ignored, the connection's address counts.
# Never None: DRF would then trust the whole header, which the client writes.
NUM_PROXIES = env.int("NUM_PROXIES", default=0)
if NUM_PROXIES < 0:
    raise ImproperlyConfigured("NUM_PROXIES must be 0 (no proxy in front) or more.")

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    # JSON with bounded nesting (ahoum/parsers.py): a too deeply nested body is a 400.
    "DEFAULT_PARSER_CLASSES": ["ahoum.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "ahoum.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "ahoum.schema.AutoSchema",
    "EXCEPTION_HANDLER": "ahoum.errors.api_exception_handler",
    "NUM_PROXIES": NUM_PROXIES,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
# Login and registration attempts per client address (DRF rate syntax: N/second|minute|hour).
AUTH_THROTTLE_RATE = env.str("AUTH_THROTTLE_RATE", default="20/minute")
# Per account, whatever the address: after LOGIN_FAILURE_LIMIT failed logins for one email
# within LOGIN_FAILURE_WINDOW_MINUTES of the first, its logins are answered 429 until that
# window ends, for unknown emails alike. A successful login or a password change starts over.
# Counted in the default cache (accounts/throttles.py): set REDIS_URL to share it.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
LOGIN_FAILURE_WINDOW_MINUTES = env.int("LOGIN_FAILURE_WINDOW_MINUTES", default=15)
if LOGIN_FAILURE_LIMIT < 1 or LOGIN_FAILURE_WINDOW_MINUTES < 1:
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_FAILURE_WINDOW_MINUTES must be 1+.")

ACCESS_TOKEN_LIFETIME = timedelta(minutes=env.int("ACCESS_TOKEN_MINUTES", default=15))
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": ACCESS_TOKEN_LIFETIME,
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("REFRESH_TOKEN_DAYS", default=14)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SECRET_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "TOKEN_OBTAIN_SERIALIZER": "accounts.serializers.LoginSerializer",
    "TOKEN_REFRESH_SERIALIZER": "accounts.serializers.RefreshSerializer",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Ahoum API",
    "DESCRIPTION": (
        "Book wellness sessions and retreats. Authenticate with `POST /auth/login` and send "
        "`Authorization: Bearer <access_token>`. Every error has the shape "
        '`{"code": ..., "detail": ..., "fields": {...}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "EventStatusEnum": "events.models.EventStatus",
        "BookingStatusEnum": "bookings.models.BookingStatus",
        "PaymentStatusEnum": "bookings.models.PaymentStatus",
        "WaitlistStatusEnum": "bookings.models.WaitlistStatus",
    },
}

# --- Google login (django-allauth) -----------------------------------------------------------
# Only allauth's Google provider is used, driven by accounts/google.py: /auth/google/login and
# /auth/google/callback end in our JWT. allauth's own pages (allauth.urls) are not mounted.
GOOGLE_CLIENT_ID = env.str("GOOGLE_CLIENT_ID", default="")
GOOGLE_CLIENT_SECRET = env.str("GOOGLE_CLIENT_SECRET", default="")
if GOOGLE_CLIENT_ID in {"your-google-client-id"}:
    GOOGLE_CLIENT_ID = ""  # an older .env.example placeholder: Google login stays off
# Front-end origins (scheme://host[:port]) whose URLs may be passed as `next` to
# /auth/google/login; they receive the tokens in the URL fragment.
GOOGLE_LOGIN_REDIRECT_ALLOWED_ORIGINS = env.list(
    "GOOGLE_LOGIN_REDIRECT_ALLOWED_ORIGINS", default=[]
)
SOCIALACCOUNT_PROVIDERS = {
    "google": {
        # allauth asks for "profile" only unless told; the email creates and links accounts.
        "SCOPE": ["profile", "email"],
        "AUTH_PARAMS": {"access_type": "online"},
        # Off by default in allauth; Google supports PKCE for web server clients too.
        "OAUTH_PKCE_ENABLED": True,
        # The endpoint URLs keep allauth's defaults (Google's). allauth reads them when its
        # Google module is imported, so tests patch its adapter (accounts/tests/conftest.py).
    }
}
if GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET:
    # Without an app, /auth/google/login answers 503 "Google login is not configured".
    SOCIALACCOUNT_PROVIDERS["google"]["APP"] = {
        "client_id": GOOGLE_CLIENT_ID,
        "secret": GOOGLE_CLIENT_SECRET,
        "key": "",
    }
ACCOUNT_ADAPTER = "accounts.google.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "accounts.google.SocialAccountAdapter"
# Email is the login; the user model has no username field.
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*"]
# Google says whether it verified the address, and unverified ones are refused
# (accounts/google.py), so allauth sends no verification mail of its own.
ACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
# A Google login whose verified email matches an existing account signs in to that account
# and links Google to it. accounts/google.py disables that account's password first: our
# /auth/register does not prove the address, so its password may be someone else's.
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_AUTO_SIGNUP = True
# Google's own access token is not used after sign-in: do not keep it.
SOCIALACCOUNT_STORE_TOKENS = False

# --- CORS (django-cors-headers) ----------------------------------------------------------
# Front-end origins (scheme://host[:port]) whose pages may call the API from a browser; by
# default the same as GOOGLE_LOGIN_REDIRECT_ALLOWED_ORIGINS. Never a wildcard. Tokens travel in
# the Authorization header, not cookies, so no credentials mode.
CORS_ALLOWED_ORIGINS = env.list(
    "CORS_ALLOWED_ORIGINS", default=GOOGLE_LOGIN_REDIRECT_ALLOWED_ORIGINS
)
if any("*" in origin for origin in CORS_ALLOWED_ORIGINS):
    raise ImproperlyConfigured("CORS_ALLOWED_ORIGINS lists origins; a wildcard is not allowed.")
CORS_ALLOW_METHODS = ("DELETE", "GET", "OPTIONS", "PATCH", "POST", "PUT")
CORS_ALLOW_HEADERS = ("authorization", "content-type", "idempotency-key")
# Readable by the front end's scripts: when to retry (429, 503) and the id to quote in a report.
CORS_EXPOSE_HEADERS = ("Retry-After", "X-Request-ID")
# The API only: not the admin or the back office (staff pages, cookie sessions), nor the Stripe
# webhook (called by Stripe's servers, never a browser).
CORS_URLS_REGEX = r"^/(?!(admin|backoffice|stripe)(/|$))"

# --- Bookings -------------------------------------------------------------------------------
DEFAULT_CURRENCY = env.str("DEFAULT_CURRENCY", default="EUR").upper()
# How long a pending booking of a paid event holds its seat while the person pays.
BOOKING_HOLD_MINUTES = env.int("BOOKING_HOLD_MINUTES", default=30)
# A lapsed hold's seat is free the moment it lapses; the scheduler (`manage.py sweep --every
# 60`, the Procfile) marks it `expired` and sends `booking.expired` at its next run.

# Seats one booking may take unless its event says otherwise (`max_seats_per_booking`).
MAX_SEATS_PER_BOOKING = env.int("MAX_SEATS_PER_BOOKING", default=10)
if not 1 <= MAX_SEATS_PER_BOOKING <= 100:
    raise ImproperlyConfigured("MAX_SEATS_PER_BOOKING must be between 1 and 100.")
# The waitlist: an offer of freed seats is held this long for the person (never past the
# event's start); with WAITLIST_SKIP_LARGER, an entry asking for more seats than are free is
# passed over (keeping its place) for smaller ones behind it, instead of waiting at the head.
WAITLIST_OFFER_MINUTES = env.int("WAITLIST_OFFER_MINUTES", default=12 * 60)
if WAITLIST_OFFER_MINUTES < 1:
    raise ImproperlyConfigured("WAITLIST_OFFER_MINUTES must be at least 1.")
WAITLIST_SKIP_LARGER = env.bool("WAITLIST_SKIP_LARGER", default=False)
# Paid bookings: owners may cancel with a full refund until this many hours before the start
# (a seat of a group booking: that seat's share).
CANCELLATION_CUTOFF_HOURS = env.int("CANCELLATION_CUTOFF_HOURS", default=24)

# Refunds are made by the worker, retried with exponential backoff (from
# REFUND_RETRY_BASE_SECONDS, doubling up to REFUND_RETRY_MAX_DELAY_SECONDS, with jitter), at
# most REFUND_MAX_ATTEMPTS tries in all; then staff see a payment issue.
REFUND_MAX_ATTEMPTS = env.int("REFUND_MAX_ATTEMPTS", default=8)
REFUND_RETRY_BASE_SECONDS = env.float("REFUND_RETRY_BASE_SECONDS", default=60)
REFUND_RETRY_MAX_DELAY_SECONDS = env.float("REFUND_RETRY_MAX_DELAY_SECONDS", default=6 * 3600)
# A verified Stripe event is applied by the worker, retried the same way after any failure (a
# lock held too long, the database gone), at most STRIPE_EVENT_MAX_ATTEMPTS tries; then staff
# see a payment issue.
STRIPE_EVENT_MAX_ATTEMPTS = env.int("STRIPE_EVENT_MAX_ATTEMPTS", default=20)
STRIPE_EVENT_RETRY_BASE_SECONDS = env.float("STRIPE_EVENT_RETRY_BASE_SECONDS", default=10)
STRIPE_EVENT_RETRY_MAX_DELAY_SECONDS = env.float(
    "STRIPE_EVENT_RETRY_MAX_DELAY_SECONDS", default=3600
)

# --- Background tasks (Django's Tasks API via django-tasks, stored in the database) ---------
# A task enqueued inside a service's transaction is committed or rolled back with it.
# Run workers with `python manage.py db_worker`.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# --- Stripe (dj-stripe) ---------------------------------------------------------------------
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
# Seconds the Stripe client waits per request (given to the client at start-up); a refund's
# lease is longer than its tries can take, so no call outlives it.
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=30)
if not 0 < STRIPE_TIMEOUT_SECONDS <= 600:
    raise ImproperlyConfigured("STRIPE_TIMEOUT_SECONDS must be between 0 and 600.")
# Times the Stripe client repeats a call that failed on the network, with a 409 or a 5xx (same
# idempotency key; stripe-python's default is 2). Web processes get gunicorn.conf.py's values
# instead (WEB_STRIPE_TIMEOUT_SECONDS, no repeat), so a request's Stripe call ends before the
# worker timeout; these apply to the task worker (refunds) and management commands.
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
if not 0 <= STRIPE_MAX_NETWORK_RETRIES <= 10:
    raise ImproperlyConfigured("STRIPE_MAX_NETWORK_RETRIES must be between 0 and 10.")
if STRIPE_SECRET_KEY in {"your-stripe-secret"}:
    STRIPE_SECRET_KEY = ""  # the .env.example placeholder: payments stay off
STRIPE_KEY_PATTERN = r"(sk|rk)_(test|live)_[A-Za-z0-9]{24,}"  # what dj-stripe accepts
if STRIPE_SECRET_KEY and not re.fullmatch(STRIPE_KEY_PATTERN, STRIPE_SECRET_KEY):
    raise ImproperlyConfigured("STRIPE_SECRET_KEY must look like sk_test_... or sk_live_...")
STRIPE_LIVE_MODE = STRIPE_SECRET_KEY.startswith(("sk_live_", "rk_live_"))
STRIPE_LIVE_SECRET_KEY = STRIPE_SECRET_KEY if STRIPE_LIVE_MODE else ""
STRIPE_TEST_SECRET_KEY = "" if STRIPE_LIVE_MODE else STRIPE_SECRET_KEY
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
if STRIPE_WEBHOOK_SECRET in {"your-stripe-webhook-secret"}:
    STRIPE_WEBHOOK_SECRET = ""
# The path part of the webhook URL registered with Stripe: /stripe/webhook/<this uuid>.
STRIPE_WEBHOOK_UUID = env.str("STRIPE_WEBHOOK_UUID", default="")
# Only for tests and local fakes: where the stripe library sends API calls.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
# Where Stripe Checkout sends the person afterwards ({CHECKOUT_SESSION_ID} is filled by Stripe).
CHECKOUT_SUCCESS_URL = env.str(
    "CHECKOUT_SUCCESS_URL",
    default="http://127.0.0.1:8000/payments/success?session_id={CHECKOUT_SESSION_ID}",
)
CHECKOUT_CANCEL_URL = env.str(
    "CHECKOUT_CANCEL_URL", default="http://127.0.0.1:8000/payments/cancelled"
)

# --- CRM ---------------------------------------------------------------------------------
# Out: every booking change is POSTed to CRM_WEBHOOK_URL by a task (crm/notifier.py), with
# `Authorization: Bearer <CRM_WEBHOOK_SECRET>` and a Standard Webhooks signature keyed by the
# secret's UTF-8 bytes. Under DEBUG the default is this server's own receiver, so the loop
# works after `make run`; otherwise the default is empty, which turns notifications off.
CRM_WEBHOOK_URL = env.str(
    "CRM_WEBHOOK_URL", default="http://127.0.0.1:8000/crm/webhook" if DEBUG else ""
)
# The bearer token Ahoum sends and the key it signs with; the receiver's too, unless
# CRM_INBOUND_SECRET (below) is set.
CRM_WEBHOOK_SECRET = env.str("CRM_WEBHOOK_SECRET", default="")
EXAMPLE_CRM_WEBHOOK_SECRETS = {"crmsecrettoken"}
if DEBUG:
    CRM_WEBHOOK_SECRET = CRM_WEBHOOK_SECRET or "development-crm-webhook-secret"
elif CRM_WEBHOOK_SECRET in EXAMPLE_CRM_WEBHOOK_SECRETS:
    raise ImproperlyConfigured("CRM_WEBHOOK_SECRET is the example value; set a random one.")
elif CRM_WEBHOOK_URL and not CRM_WEBHOOK_SECRET:
    raise ImproperlyConfigured("CRM_WEBHOOK_URL is set: set CRM_WEBHOOK_SECRET too.")
# Seconds to connect and, separately, to wait for the answer, per attempt.
CRM_TIMEOUT_SECONDS = env.float("CRM_TIMEOUT_SECONDS", default=10)
# Failed deliveries are retried with exponential backoff (from CRM_RETRY_BASE_SECONDS, doubling
# up to CRM_RETRY_MAX_DELAY_SECONDS, with jitter) until CRM_RETRY_HOURS after they were queued.
CRM_RETRY_HOURS = env.float("CRM_RETRY_HOURS", default=24)
CRM_RETRY_BASE_SECONDS = env.float("CRM_RETRY_BASE_SECONDS", default=10)
CRM_RETRY_MAX_DELAY_SECONDS = env.float("CRM_RETRY_MAX_DELAY_SECONDS", default=3600)
# In: POST /webhook and /crm/webhook. Larger bodies are refused with 413.
CRM_WEBHOOK_MAX_BYTES = env.int("CRM_WEBHOOK_MAX_BYTES", default=65536)
# Refuse unsigned notifications (403) once every sender signs them.
CRM_WEBHOOK_REQUIRE_SIGNATURE = env.bool("CRM_WEBHOOK_REQUIRE_SIGNATURE", default=False)
# The receiver's own bearer secret: the token it accepts (and a key senders may sign with);
# it stores notifications for review, never marks a booking paid. Empty: CRM_WEBHOOK_SECRET,
# one secret both ways. Set another one in production: every notification sent out carries
# CRM_WEBHOOK_SECRET as its bearer token (`manage.py check --deploy` warns, crm.W001).
CRM_INBOUND_SECRET = env.str("CRM_INBOUND_SECRET", default="")
if not DEBUG and CRM_INBOUND_SECRET in EXAMPLE_CRM_WEBHOOK_SECRETS:
    raise ImproperlyConfigured("CRM_INBOUND_SECRET is the example value; set a random one.")
# The payment signing key: only a valid, fresh Standard Webhooks signature keyed with it marks
# a booking paid. Never a bearer token and never sent, so seeing a request does not give it
# away. Empty (the default): no notification marks a booking paid; they are stored for review.
CRM_INBOUND_SIGNING_SECRET = env.str("CRM_INBOUND_SIGNING_SECRET", default="")
if CRM_INBOUND_SIGNING_SECRET:
    if CRM_INBOUND_SIGNING_SECRET in {CRM_WEBHOOK_SECRET, CRM_INBOUND_SECRET}:
        raise ImproperlyConfigured(
            "CRM_INBOUND_SIGNING_SECRET must differ from CRM_WEBHOOK_SECRET and "
            "CRM_INBOUND_SECRET: those travel as bearer tokens."
        )
    if not DEBUG and CRM_INBOUND_SIGNING_SECRET in EXAMPLE_CRM_WEBHOOK_SECRETS:
        raise ImproperlyConfigured(
            "CRM_INBOUND_SIGNING_SECRET is the example value; set a random one."
        )
# Received notifications are forwarded here (empty: not forwarded) with
# `Authorization: Bearer <CRM_FORWARD_TOKEN>`. FORWARD_FLASK_URL/_TOKEN are the original names.
CRM_FORWARD_URL = env.str("CRM_FORWARD_URL", default=env.str("FORWARD_FLASK_URL", default=""))
CRM_FORWARD_TOKEN = env.str("CRM_FORWARD_TOKEN", default=env.str("FORWARD_FLASK_TOKEN", default=""))

# --- Email ----------------------------------------------------------------------------------
# Booking emails are sent by tasks after the change commits (bookings/notifications.py).
# EMAIL_URL picks Django's backend: smtp://host:25, smtp+tls://user:password@host:587
# (STARTTLS) or smtp+ssl://user:password@host:465, user and password percent-encoded;
# consolemail:// prints them. Default: the console under DEBUG, else an SMTP server on
# localhost:25 (set EMAIL_URL in production).
EMAIL_URL = env.str("EMAIL_URL", default="") or (
    "consolemail://" if DEBUG else "smtp://localhost:25"
)
email_config = env.email_url_config(EMAIL_URL)
EMAIL_BACKEND = email_config["EMAIL_BACKEND"]
EMAIL_HOST = email_config["EMAIL_HOST"] or "localhost"
EMAIL_USE_TLS = bool(email_config.get("EMAIL_USE_TLS"))
EMAIL_USE_SSL = bool(email_config.get("EMAIL_USE_SSL"))
EMAIL_PORT = email_config["EMAIL_PORT"] or (465 if EMAIL_USE_SSL else 587 if EMAIL_USE_TLS else 25)
EMAIL_HOST_USER = email_config["EMAIL_HOST_USER"] or ""
EMAIL_HOST_PASSWORD = email_config["EMAIL_HOST_PASSWORD"] or ""
# Seconds an SMTP connection may block before the attempt fails (and is retried later).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="") or "Ahoum <noreply@ahoum.example>"
# Links in emails and calendar invites point here: {PUBLIC_BASE_URL}/bookings/{id}.
PUBLIC_BASE_URL = (env.str("PUBLIC_BASE_URL", default="") or "http://127.0.0.1:8000").rstrip("/")
# A failed send is retried with exponential backoff (from EMAIL_RETRY_BASE_SECONDS, doubling up
# to EMAIL_RETRY_MAX_DELAY_SECONDS, with jitter), at most EMAIL_MAX_ATTEMPTS tries in all.
EMAIL_MAX_ATTEMPTS = env.int("EMAIL_MAX_ATTEMPTS", default=10)
EMAIL_RETRY_BASE_SECONDS = env.float("EMAIL_RETRY_BASE_SECONDS", default=60)
EMAIL_RETRY_MAX_DELAY_SECONDS = env.float("EMAIL_RETRY_MAX_DELAY_SECONDS", default=3600)

# --- Logging ---------------------------------------------------------------------------------
# JSON lines (one per request, plus each booking transition, Stripe event, CRM delivery and
# refund) in production; readable text in development. LOG_FORMAT overrides.
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="text" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "ahoum.logs.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "ahoum.logs.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # The request line above replaces Django's own 4xx/5xx request warnings (errors with
        # a traceback still come from django.request at ERROR).
        "django.request": {"level": "ERROR"},
        # stripe logs every API call at INFO; our payments module logs what matters.
        "stripe": {"level": "WARNING"},
    },
}
