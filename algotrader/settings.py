"""All settings of algotrader, read from the environment in one place (``.env.example`` lists
every variable). Defaults suit a single-machine development run; with ``DJANGO_ENV=production``
a missing secret stops start-up and the HTTPS hardening ``check --deploy`` asks for is on."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import django_stubs_ext
import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django_guid.integrations import CeleryIntegration

from algotrader.processes import DEFAULT_DATABASE_URL, log_format
from algotrader.queues import TaskName

# Lets generic Django classes be subscripted (``ModelAdmin[Strategy]``) at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in {"development", "production"}:
    raise ImproperlyConfigured("DJANGO_ENV must be 'development' or 'production'")
PRODUCTION = DJANGO_ENV == "production"


def _secret(name: str, development_default: str) -> str:
    """A secret: required in production, a labelled throwaway value elsewhere. Empty means unset."""
    value = env.str(name, default="")
    if PRODUCTION and not value:
        raise ImproperlyConfigured(f"{name} must be set when DJANGO_ENV=production")
    return value or development_default


# --- Core -------------------------------------------------------------------

SECRET_KEY = _secret("SECRET_KEY", "development-only-insecure-secret-key-do-not-deploy")
DEBUG = env.bool("DEBUG", default=False)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when DJANGO_ENV=production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework_simplejwt",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "django_celery_beat",
    "channels",
    "django_guid",
    "algotrader.users",
    "monitoring",
    "brokers",
    "strategies",
    "execution",
    "market",
    "notifications",
]

MIDDLEWARE = [
    # First: every line logged while serving a request carries its id (X-Request-ID).
    "django_guid.middleware.guid_middleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes requires: it turns a locked-out request into the lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "algotrader.urls"
ASGI_APPLICATION = "algotrader.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- Database ---------------------------------------------------------------
# PostgreSQL only: the engine's guarantees rest on its row locks, partial unique indexes
# and advisory locks.

RUN_DIR = BASE_DIR / (env.str("RUN_DIR", default="") or "var")
DATABASES = {
    "default": environ.Env.db_url_config(env.str("DATABASE_URL", default="") or DEFAULT_DATABASE_URL),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Under ASGI each request runs in a thread of its own, and a persistent connection per thread
# piles up until PostgreSQL refuses clients: the web process (algotrader/asgi.py turns this
# on) takes its connections from a pool of at most DATABASE_POOL_MAX_SIZE instead.
if env.bool("DATABASE_POOL", default=False):
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django's pool requires it: a closed connection goes back
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=10),
        "timeout": env.float("DATABASE_POOL_TIMEOUT_SECONDS", default=10.0),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: runtime state, Celery broker, channel layer, cache ----------------

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "cache",
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8's default socket_timeout equals channels_redis's blocking BZPOPMIN
        # timeout, so every idle receive would time out (django/channels_redis#422).
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": 15}],
            "prefix": "channels",
            # The tick channel carries one message a frame; a consumer that falls behind
            # gets this many frames of slack before the listener has to drop one.
            "channel_capacity": {"ticks": 2000},
        },
    }
}

# --- Celery -----------------------------------------------------------------
# Queues, task names and routes are in algotrader.queues; the beat schedule is at the end.

CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
# A dead prefork process's task (the stop-loss worker's) is redelivered at once; a dead orders
# worker's unacknowledged tasks wait for the visibility timeout, and settlement runs their
# fired BUYs and SELLs meanwhile, each once.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_WORKER_SEND_TASK_EVENTS = True
# Task events go out at most this often, a buffer at a time (algotrader.worker_consumer).
CELERY_WORKER_CONSUMER = "algotrader.worker_consumer:Consumer"
TASK_EVENTS_FLUSH_SECONDS = env.float("TASK_EVENTS_FLUSH_SECONDS", default=0.1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Tasks between the Celery fixup's closing of a worker's database connections; in between
# they live by CONN_MAX_AGE and health checks (algotrader.celery), instead of a new
# connection for every task.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
# Longer than any task may run, so that Redis never redelivers a task that is
# still running; interrupted work is settled by database-driven recovery instead.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
}
CELERY_BEAT_SCHEDULER = "algotrader.beat_scheduler:SnapshotDatabaseScheduler"
CELERY_TIMEZONE = "UTC"
# Beat looks for new or moved BUY/SELL slots (T3) at least this often, in seconds.
CELERY_BEAT_MAX_LOOP_INTERVAL = env.float("CELERY_BEAT_MAX_LOOP_INTERVAL", default=0.5)
# The scheduler's safety net: every this many seconds, fire whatever is due and missed.
SCHEDULER_SWEEP_SECONDS = env.int("SCHEDULER_SWEEP_SECONDS", default=5)
# Late policy: a BUY that fires (or would start) more than BUY_GRACE_SECONDS after its
# time is skipped with an alert; a SELL always runs, however late, within
# SELL_EXPIRES_SECONDS of its time (a queued SELL older than that is dropped and alerted).
BUY_GRACE_SECONDS = env.int("BUY_GRACE_SECONDS", default=30)
SELL_EXPIRES_SECONDS = env.int("SELL_EXPIRES_SECONDS", default=6 * 3600)
if CELERY_BEAT_MAX_LOOP_INTERVAL <= 0 or SCHEDULER_SWEEP_SECONDS < 1 or BUY_GRACE_SECONDS < 1:
    raise ImproperlyConfigured(
        "CELERY_BEAT_MAX_LOOP_INTERVAL must be > 0, SCHEDULER_SWEEP_SECONDS and BUY_GRACE_SECONDS >= 1"
    )
if SELL_EXPIRES_SECONDS < BUY_GRACE_SECONDS:
    raise ImproperlyConfigured("SELL_EXPIRES_SECONDS must be at least BUY_GRACE_SECONDS")

# The morning readiness check: READINESS_MINUTES before an account's first BUY of the day,
# its runs are checked (login, funds, instruments, venue). Funds must cover each planned BUY's
# quantity at the last price times READINESS_MARGIN_PERCENT % (100: the full value; an intraday
# product's broker margin is a fraction of it).
READINESS_MINUTES = env.int("READINESS_MINUTES", default=15)
READINESS_MARGIN_PERCENT = env.int("READINESS_MARGIN_PERCENT", default=100)
if READINESS_MINUTES < 1 or not 0 < READINESS_MARGIN_PERCENT <= 100:
    raise ImproperlyConfigured("READINESS_MINUTES must be >= 1, READINESS_MARGIN_PERCENT in 1..100")

# --- Order execution ------------------------------------------------------------
# The day's loss limit (a user's or an account's max_loss_per_day) is checked after each exit's
# fill and, for users holding positions, every LOSS_CHECK_SECONDS as prices move.
LOSS_CHECK_SECONDS = env.int("LOSS_CHECK_SECONDS", default=10)
if LOSS_CHECK_SECONDS < 1:
    raise ImproperlyConfigured("LOSS_CHECK_SECONDS must be at least 1")
ORDER_FOLLOW_SECONDS = env.float("ORDER_FOLLOW_SECONDS", default=30.0)
# Interrupted intents: every ORDER_SETTLE_SECONDS, orders still live and untouched for
# ORDER_SETTLE_AFTER_SECONDS whose strategy no worker holds are settled by their tag.
ORDER_SETTLE_SECONDS = env.int("ORDER_SETTLE_SECONDS", default=5)
ORDER_SETTLE_AFTER_SECONDS = env.float("ORDER_SETTLE_AFTER_SECONDS", default=5.0)
# An exit still live this long after it was last touched, under a lock not renewed for as
# long, is checked at the broker: final there, its follower died and it is confirmed then.
EXIT_CONFIRM_AFTER_SECONDS = env.float("EXIT_CONFIRM_AFTER_SECONDS", default=3.0)
ORDER_UNKNOWN_GRACE_SECONDS = env.float("ORDER_UNKNOWN_GRACE_SECONDS", default=5.0)
# While the account's order-update stream is up (the orderupdates process), a follow learns
# its order's fill from the broker's pushed updates, and asks the broker (GET the order) only
# when no update arrived for this long: polling stays, as the fallback.
ORDER_UPDATE_WAIT_SECONDS = env.float("ORDER_UPDATE_WAIT_SECONDS", default=1.0)
# The orderupdates process re-reads which Kite accounts can trade this often (accounts added,
# removed or logged in again are followed without a restart).
ORDER_UPDATE_ACCOUNTS_SECONDS = env.float("ORDER_UPDATE_ACCOUNTS_SECONDS", default=10.0)
ORDER_RETRY_SECONDS_BUY = env.float("ORDER_RETRY_SECONDS_BUY", default=10.0)
ORDER_RETRY_SECONDS_SELL = env.float("ORDER_RETRY_SECONDS_SELL", default=60.0)
ORDER_RETRY_SECONDS_STOPLOSS = env.float("ORDER_RETRY_SECONDS_STOPLOSS", default=180.0)
# A stop-loss task retries at the broker for at most STOPLOSS_SLOT_SECONDS (once only,
# on an account whose broker calls failed that recently), so that a 429 storm on one
# account cannot hold the stop-loss worker's few slots; settlement places it again after
# that, one attempt a round, and ORDER_RETRY_SECONDS_STOPLOSS is how long its transient
# failures go before the user is alerted, as when the task itself retried that long.
STOPLOSS_SLOT_SECONDS = env.float("STOPLOSS_SLOT_SECONDS", default=3.0)
# The protective stop: once a BUY fills, an SL-M SELL rests at the broker at the stop trigger
# (lowered by PROTECTIVE_STOP_BUFFER_BPS), so the position is protected while our processes are
# down; every exit converts it (to MARKET). Where SL-M is refused, an SL with its limit
# PROTECTIVE_SL_LIMIT_BUFFER_BPS below the trigger. Settlement polls a resting one at most every
# PROTECTIVE_POLL_SECONDS (the broker's rate budget), to learn that its trigger filled it.
PROTECTIVE_STOPS = env.bool("PROTECTIVE_STOPS", default=True)
PROTECTIVE_STOP_BUFFER_BPS = env.int("PROTECTIVE_STOP_BUFFER_BPS", default=0)
PROTECTIVE_SL_LIMIT_BUFFER_BPS = env.int("PROTECTIVE_SL_LIMIT_BUFFER_BPS", default=50)
PROTECTIVE_POLL_SECONDS = env.float("PROTECTIVE_POLL_SECONDS", default=10.0)
if min(PROTECTIVE_STOP_BUFFER_BPS, PROTECTIVE_SL_LIMIT_BUFFER_BPS) < 0 or PROTECTIVE_POLL_SECONDS <= 0:
    raise ImproperlyConfigured("PROTECTIVE_*_BUFFER_BPS must be >= 0, PROTECTIVE_POLL_SECONDS > 0")
ORDER_RETRY_BACKOFF_MAX_SECONDS = env.float("ORDER_RETRY_BACKOFF_MAX_SECONDS", default=2.0)
EXECUTION_LOCK_SECONDS = env.float("EXECUTION_LOCK_SECONDS", default=15.0)
# An exit that failed is placed again by settlement, never abandoned: after
# EXIT_RETRY_FIRST_DELAY_SECONDS, doubling up to a cap, a stop-loss's cap the shorter.
EXIT_RETRY_FIRST_DELAY_SECONDS = env.float("EXIT_RETRY_FIRST_DELAY_SECONDS", default=1.0)
EXIT_RETRY_MAX_DELAY_SECONDS_STOPLOSS = env.float("EXIT_RETRY_MAX_DELAY_SECONDS_STOPLOSS", default=5.0)
EXIT_RETRY_MAX_DELAY_SECONDS_SELL = env.float("EXIT_RETRY_MAX_DELAY_SECONDS_SELL", default=60.0)
if not (
    0 <= EXIT_RETRY_FIRST_DELAY_SECONDS <= EXIT_RETRY_MAX_DELAY_SECONDS_STOPLOSS <= EXIT_RETRY_MAX_DELAY_SECONDS_SELL
):
    raise ImproperlyConfigured("EXIT_RETRY_*: first delay <= stop-loss cap <= SELL cap")
# A BUY (still within its grace) or SELL fired this long ago whose task never claimed it
# lost its task (a worker killed, a queue flushed): settlement runs it, and so does a
# recovery; the claim lets one through.
LOST_TASK_AFTER_SECONDS = env.float("LOST_TASK_AFTER_SECONDS", default=10.0)
# Orders a second per broker account, by adapter kind, shared by every worker (for Kite
# by default brokers.kite_limits' figure, 10, which the Kite simulator enforces too);
# ORDER_RATE_STOPLOSS_RESERVE of them only stop-losses may use.
# ORDER_RATE_KITE unset: Kite's figure; set, it may only be lower (the limiter takes the smaller).
ORDER_RATE_LIMITS = {"paper": env.int("ORDER_RATE_PAPER", default=50)}
if os.environ.get("ORDER_RATE_KITE"):
    ORDER_RATE_LIMITS["kite"] = env.int("ORDER_RATE_KITE")
ORDER_RATE_STOPLOSS_RESERVE = env.int("ORDER_RATE_STOPLOSS_RESERVE", default=3)
if any(limit <= ORDER_RATE_STOPLOSS_RESERVE for limit in ORDER_RATE_LIMITS.values()):
    raise ImproperlyConfigured("every ORDER_RATE_* must exceed ORDER_RATE_STOPLOSS_RESERVE")
# X5 SAFETY_ABORT: this many broker errors on one account's orders within the window
# stop its strategies, exit its positions and refuse new BUYs until an operator lifts it.
SAFETY_MAX_BROKER_ERRORS = env.int("SAFETY_MAX_BROKER_ERRORS", default=20)
SAFETY_WINDOW_SECONDS = env.int("SAFETY_WINDOW_SECONDS", default=60)
# A stop-loss task waiting in the queue longer than this is dropped (and alerted).
STOPLOSS_EXPIRES_SECONDS = env.int("STOPLOSS_EXPIRES_SECONDS", default=6 * 3600)
if min(ORDER_FOLLOW_SECONDS, ORDER_UNKNOWN_GRACE_SECONDS, ORDER_RETRY_BACKOFF_MAX_SECONDS) <= 0:
    raise ImproperlyConfigured("ORDER_FOLLOW/UNKNOWN_GRACE/RETRY_BACKOFF_MAX seconds must be > 0")
if ORDER_UPDATE_WAIT_SECONDS < 0 or ORDER_UPDATE_ACCOUNTS_SECONDS <= 0:
    raise ImproperlyConfigured("ORDER_UPDATE_WAIT_SECONDS must be >= 0, ORDER_UPDATE_ACCOUNTS_SECONDS > 0")
if not ORDER_RETRY_SECONDS_BUY <= ORDER_RETRY_SECONDS_SELL <= ORDER_RETRY_SECONDS_STOPLOSS:
    raise ImproperlyConfigured("a stop-loss must retry at least as long as a SELL, a SELL as long as a BUY")
if not 0 < STOPLOSS_SLOT_SECONDS <= ORDER_RETRY_SECONDS_STOPLOSS:
    raise ImproperlyConfigured("STOPLOSS_SLOT_SECONDS must be > 0 and at most ORDER_RETRY_SECONDS_STOPLOSS")
# The holder renews the lock between broker calls, and one call may take Kite's whole timeout.
if EXECUTION_LOCK_SECONDS < 10:
    raise ImproperlyConfigured("EXECUTION_LOCK_SECONDS must be at least 10 (a broker call plus a pause)")

# --- Recovery (X1, X4) ------------------------------------------------------------
# How often workers and the listener look for Redis having lost the runtime (a flush, a
# restart without persistence); 0 turns the look off, and starts still recover.
RECOVERY_WATCH_SECONDS = env.float("RECOVERY_WATCH_SECONDS", default=1.0)
if RECOVERY_WATCH_SECONDS < 0:
    raise ImproperlyConfigured("RECOVERY_WATCH_SECONDS must be >= 0")

# --- Auth -------------------------------------------------------------------

AUTH_USER_MODEL = "users.User"
AUTHENTICATION_BACKENDS = [
    # First, as django-axes requires: refuses locked-out credentials before any check.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "algotrader.users.password_validation.NotTrivialPasswordValidator"},
]

ACCESS_TOKEN_MINUTES = env.int("ACCESS_TOKEN_MINUTES", default=5)
if not 1 <= ACCESS_TOKEN_MINUTES <= 5:
    raise ImproperlyConfigured("ACCESS_TOKEN_MINUTES must be between 1 and 5")
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=ACCESS_TOKEN_MINUTES),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("REFRESH_TOKEN_DAYS", default=7)),
    "UPDATE_LAST_LOGIN": True,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": _secret("JWT_SIGNING_KEY", "development-only-insecure-jwt-signing-key"),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
}

# Password reset: the link mailed is PASSWORD_RESET_URL?uid=...&token=... (the app's page or deep
# link, which posts them to /api/v1/auth/password/reset/confirm/); the token dies after this long.
PASSWORD_RESET_URL = env.str("PASSWORD_RESET_URL", default="http://localhost:8000/reset-password")
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT_SECONDS", default=3600)
if PASSWORD_RESET_TIMEOUT <= 0:
    raise ImproperlyConfigured("PASSWORD_RESET_TIMEOUT_SECONDS must be > 0")

# django-axes: repeated failed logins lock out the address, and the account from that address only:
# failing on someone's account from elsewhere must not lock its owner out (the per-account
# throttle bounds guessing across many addresses).
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = ["ip_address", ["username", "ip_address"]]
AXES_USERNAME_FORM_FIELD = "email"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "algotrader.users.lockout.lockout_response"
AXES_VERBOSE = False
AXES_IPWARE_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]

# --- REST API ---------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["algotrader.api.parsers.BoundedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "algotrader.api.exception_handler.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "algotrader.api.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_RATES": {
        "auth_ip": env.str("THROTTLE_AUTH_PER_IP", default="60/min"),
        "auth_account": env.str("THROTTLE_AUTH_PER_ACCOUNT", default="20/min"),
        "auth_token": env.str("THROTTLE_AUTH_TOKEN_PER_IP", default="30/min"),
    },
    "NUM_PROXIES": env.int("TRUSTED_PROXY_COUNT", default=0),
}
# No request of ours nests deeper; a deeper body is refused before it is parsed.
API_JSON_MAX_DEPTH = 32
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

# How far ahead a strategy's trade date may be: the market calendar is trusted that far.
STRATEGY_DAYS_AHEAD_MAX = env.int("STRATEGY_DAYS_AHEAD_MAX", default=366)

API_DOCS_PUBLIC = env.bool("API_DOCS_PUBLIC", default=not PRODUCTION)

# A policy on every response: the admin and the API docs load only their own scripts and styles
# (the docs' Swagger UI is the split view, its init script a file), the JSON API nothing at all.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        # The admin's widgets and Redoc set style attributes.
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

SPECTACULAR_SETTINGS = {
    "TITLE": "algotrader API",
    "DESCRIPTION": "Backend of a retail algo-trading app: accounts, brokers, strategies, orders, events.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Production serves the schema and its docs to staff only (a logged-in admin session), unless opened.
    "SERVE_PERMISSIONS": ["algotrader.api.permissions.ApiDocsPermission"],
    "SERVE_AUTHENTICATION": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ],
    # Two models' "status" choices, and two fields named "kind", would otherwise meet under one
    # generated name: each enum gets its own (the broker account's keeps KindEnum).
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "execution.models.Order.Status",
        "StrategyStatusEnum": "strategies.models.Strategy.Status",
        "KindEnum": "brokers.models.BrokerAccount.Kind",
        "NotificationKindEnum": "notifications.models.Notification.Kind",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "algotrader.api.schema.error_responses",
        "algotrader.api.schema.anonymous_operations",
    ],
}

# --- Time -------------------------------------------------------------------
# Stored in UTC; exchange times (buy/sell) are wall-clock in EXCHANGE_TIME_ZONE.

USE_TZ = True
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Kolkata")
EXCHANGE_TIME_ZONE = "Asia/Kolkata"
LANGUAGE_CODE = "en-us"
USE_I18N = False

# --- Static files -------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = RUN_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # also makes RUN_DIR
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = not PRODUCTION

# --- Secrets at rest ----------------------------------------------------------
# Fernet keys for broker credentials, independent of SECRET_KEY: the first
# encrypts, all decrypt, so a key is retired by rotating to a new first key.

FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[]) or [
    _secret("FIELD_ENCRYPTION_KEYS", "ZGV2ZWxvcG1lbnQtb25seS1pbnNlY3VyZS1rZXkhISE=")
]

# --- Brokers ------------------------------------------------------------------
# Kite Connect endpoints (point them at the Kite simulator in tests and demos).

KITE_API_ROOT = env.str("KITE_API_ROOT", default="https://api.kite.trade")
KITE_WS_ROOT = env.str("KITE_WS_ROOT", default="wss://ws.kite.trade")
KITE_LOGIN_URL = env.str("KITE_LOGIN_URL", default="https://kite.zerodha.com/connect/login")
# The redirect URL registered with the Kite Connect app (developers.kite.trade): this
# server's /kite/callback/, where Kite sends the browser back after the daily login.
KITE_REDIRECT_URL = env.str("KITE_REDIRECT_URL", default="http://127.0.0.1:8000/kite/callback/")
# Seconds a one-tap login link (its signed, single-use state) stays good.
KITE_LOGIN_STATE_TTL_SECONDS = env.int("KITE_LOGIN_STATE_TTL_SECONDS", default=600)
if KITE_LOGIN_STATE_TTL_SECONDS <= 0:
    raise ImproperlyConfigured("KITE_LOGIN_STATE_TTL_SECONDS must be positive")
# Seconds the Kite adapter waits for an answer; an order write unanswered by then is ambiguous.
KITE_TIMEOUT_SECONDS = env.float("KITE_TIMEOUT_SECONDS", default=7.0)
# True when KITE_API_ROOT points at the Kite simulator: strategies on Kite accounts then
# follow the simulated exchange's calendar (open at all hours) instead of NSE/BSE's.
KITE_SIMULATED = env.bool("KITE_SIMULATED", default=False)

# The instrument search's list: refreshed each trading morning from this broker's public dump
# ("kite": KITE_API_ROOT's /instruments; "paper": the shipped list), for these exchanges.
INSTRUMENTS_BROKER = env.str("INSTRUMENTS_BROKER", default="paper")
INSTRUMENTS_EXCHANGES = [e.strip().upper() for e in env.list("INSTRUMENTS_EXCHANGES", default=["NSE"]) if e.strip()]
if INSTRUMENTS_BROKER not in {"paper", "kite"} or not INSTRUMENTS_EXCHANGES:
    raise ImproperlyConfigured("INSTRUMENTS_BROKER must be 'paper' or 'kite', INSTRUMENTS_EXCHANGES not empty")

# The paper broker: market orders fill at the last tick, moved against the trader by
# PAPER_SLIPPAGE_BPS and completed PAPER_LATENCY_MS after they are placed.
PAPER_SLIPPAGE_BPS = env.float("PAPER_SLIPPAGE_BPS", default=5.0)
PAPER_LATENCY_MS = env.int("PAPER_LATENCY_MS", default=200)
PAPER_TICK_INTERVAL = env.float("PAPER_TICK_INTERVAL", default=0.5)
PAPER_MARKET_ALWAYS_OPEN = env.bool("PAPER_MARKET_ALWAYS_OPEN", default=True)
if PAPER_SLIPPAGE_BPS < 0 or PAPER_LATENCY_MS < 0 or PAPER_TICK_INTERVAL <= 0:
    raise ImproperlyConfigured("PAPER_SLIPPAGE_BPS and PAPER_LATENCY_MS must be >= 0, PAPER_TICK_INTERVAL > 0")

# Market data: an empty MARKET_FEED_ACCOUNT_ID follows the paper broker's simulated market; a
# comma-separated list spreads the listener's connections over several accounts' API keys.
MARKET_FEED_ACCOUNT_IDS = [
    int(part) for part in env.str("MARKET_FEED_ACCOUNT_ID", default="").split(",") if part.strip()
]
MARKET_FEED_ACCOUNT_ID = MARKET_FEED_ACCOUNT_IDS[0] if MARKET_FEED_ACCOUNT_IDS else None
# A Kite ticker connection carries at most 3,000 instruments, and an API key opens at most 3.
MARKET_FEED_INSTRUMENTS_PER_CONNECTION = env.int("MARKET_FEED_INSTRUMENTS_PER_CONNECTION", default=3000)
MARKET_FEED_CONNECTIONS_PER_KEY = env.int("MARKET_FEED_CONNECTIONS_PER_KEY", default=3)
if min(MARKET_FEED_INSTRUMENTS_PER_CONNECTION, MARKET_FEED_CONNECTIONS_PER_KEY) < 1:
    raise ImproperlyConfigured("MARKET_FEED_INSTRUMENTS_PER_CONNECTION and _CONNECTIONS_PER_KEY must be >= 1")
MARKET_FEED_STALE_SECONDS = env.float("MARKET_FEED_STALE_SECONDS", default=10.0)
MARKET_FEED_STALL_SECONDS = env.float("MARKET_FEED_STALL_SECONDS", default=10.0)
MARKET_RECONCILE_SECONDS = env.float("MARKET_RECONCILE_SECONDS", default=30.0)
MARKET_PRICE_PUSH_INTERVAL = env.float("MARKET_PRICE_PUSH_INTERVAL", default=0.5)
if min(MARKET_FEED_STALE_SECONDS, MARKET_FEED_STALL_SECONDS, MARKET_RECONCILE_SECONDS) <= 0:
    raise ImproperlyConfigured("MARKET_FEED_STALE_SECONDS, _STALL_SECONDS and MARKET_RECONCILE_SECONDS must be > 0")
if MARKET_PRICE_PUSH_INTERVAL < 0:
    raise ImproperlyConfigured("MARKET_PRICE_PUSH_INTERVAL must be >= 0")
# A trailing stop moves on every new high in Redis; the broker's protective order and the database follow
# it at most once per TRAIL_MODIFY_MIN_SECONDS per strategy, only after a move of TRAIL_MODIFY_MIN_BPS, and the
# order at most TRAIL_MODIFY_MAX times a position (Kite allows 25 modifications an order).
TRAIL_MODIFY_MIN_SECONDS = env.float("TRAIL_MODIFY_MIN_SECONDS", default=3.0)
TRAIL_MODIFY_MIN_BPS = env.float("TRAIL_MODIFY_MIN_BPS", default=20.0)
TRAIL_MODIFY_MAX = env.int("TRAIL_MODIFY_MAX", default=20)
if TRAIL_MODIFY_MIN_SECONDS < 0 or TRAIL_MODIFY_MIN_BPS < 0 or not 0 <= TRAIL_MODIFY_MAX <= 24:
    raise ImproperlyConfigured("TRAIL_MODIFY_MIN_* must be >= 0 and TRAIL_MODIFY_MAX in 0..24")

# --- Security hardening (production) ------------------------------------------

if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    if env.bool("BEHIND_TLS_PROXY", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- Alerts to operators (L4) ----------------------------------------------------
# Webhooks get {"text": ...}, which Slack incoming webhooks and Telegram bridges accept.

ALERT_EMAILS = env.list("ALERT_EMAILS", default=[])
ALERT_WEBHOOK_URL = env.str("ALERT_WEBHOOK_URL", default="")
ALERT_WEBHOOK_TIMEOUT_SECONDS = env.float("ALERT_WEBHOOK_TIMEOUT_SECONDS", default=5.0)
# Retries of a failing channel with backoff; the minutely sweep then keeps trying for a day.
ALERT_DELIVERY_RETRIES = env.int("ALERT_DELIVERY_RETRIES", default=8)
_email = env.email_url("EMAIL_URL", default="smtp://localhost:25")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST", "")
EMAIL_PORT = _email.get("EMAIL_PORT", 25)
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS", False))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL", False))
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="algotrader@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
if ALERT_WEBHOOK_TIMEOUT_SECONDS <= 0:
    raise ImproperlyConfigured("ALERT_WEBHOOK_TIMEOUT_SECONDS must be > 0")

# --- Push notifications to phones (FCM HTTP v1) -------------------------------------
# The Firebase service account's key: a path to its JSON file, or the JSON itself. Unset,
# notifications are still recorded (the feed) and nothing is pushed.

FCM_SERVICE_ACCOUNT_KEY = env.str("FCM_SERVICE_ACCOUNT_KEY", default="")
# The Firebase project; empty means the service account's own project_id.
FCM_PROJECT_ID = env.str("FCM_PROJECT_ID", default="")
# FCM's root and the OAuth2 token endpoint (empty: the key's token_uri): overridden by tests.
FCM_ENDPOINT = env.str("FCM_ENDPOINT", default="https://fcm.googleapis.com").rstrip("/")
FCM_TOKEN_URI = env.str("FCM_TOKEN_URI", default="")
FCM_TIMEOUT_SECONDS = env.float("FCM_TIMEOUT_SECONDS", default=10.0)
# Retries of a push FCM answered 429 or 5xx to, with backoff; the minutely sweep then retries
# what is left while the notification is fresh.
FCM_PUSH_RETRIES = env.int("FCM_PUSH_RETRIES", default=5)
if FCM_TIMEOUT_SECONDS <= 0 or FCM_PUSH_RETRIES < 0:
    raise ImproperlyConfigured("FCM_TIMEOUT_SECONDS must be > 0 and FCM_PUSH_RETRIES >= 0")

# --- Metrics and readiness ----------------------------------------------------------
# Unset, PROMETHEUS_MULTIPROC_DIR leaves /metrics with the web process's own counters only.

PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR:
    # Absolute, existing, and in this process's environment before prometheus_client is
    # imported (it reads the variable then); settings load first in every process.
    _metrics_dir = Path(PROMETHEUS_MULTIPROC_DIR)
    _metrics_dir = _metrics_dir if _metrics_dir.is_absolute() else BASE_DIR / _metrics_dir
    _metrics_dir.mkdir(parents=True, exist_ok=True)
    PROMETHEUS_MULTIPROC_DIR = os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir)
READY_HEARTBEAT_MAX_AGE_SECONDS = env.float("READY_HEARTBEAT_MAX_AGE_SECONDS", default=30.0)
BEAT_HEARTBEAT_SECONDS = env.int("BEAT_HEARTBEAT_SECONDS", default=10)
if BEAT_HEARTBEAT_SECONDS < 1 or READY_HEARTBEAT_MAX_AGE_SECONDS <= BEAT_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured("READY_HEARTBEAT_MAX_AGE_SECONDS must exceed BEAT_HEARTBEAT_SECONDS (>= 1)")

# --- Logging: one line per record on stdout, secrets redacted, ids on every line --------
# Every process logs through this (Celery and flower adopt it in algotrader.celery, uvicorn's
# loggers are routed here), so every line gets the same redaction and ids.

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
try:
    LOG_FORMAT = log_format(os.environ)
except ValueError as error:
    raise ImproperlyConfigured(str(error)) from error
DJANGO_GUID = {
    "GUID_HEADER_NAME": "X-Request-ID",
    "VALIDATE_GUID": True,  # a client's id is kept only if it is a UUID: nothing else reaches the logs
    "RETURN_HEADER": True,
    "INTEGRATIONS": [CeleryIntegration(use_django_logging=False, log_parent=False)],
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact": {"()": "monitoring.logging.RedactSecretsFilter"},
        "context": {"()": "monitoring.logging.LogContextFilter"},
        # Beat's line for every task it sends (the sweeper, settlement, the heartbeat:
        # several every few seconds) goes to DEBUG; its start-up lines stay at INFO.
        "beat_sends_at_debug": {"()": "monitoring.logging.DemoteToDebug", "prefix": "Scheduler: Sending due task"},
    },
    "formatters": {
        "json": {"()": "monitoring.logging.JsonFormatter"},
        "text": {"()": "monitoring.logging.TextFormatter"},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": LOG_FORMAT,
            "filters": ["context", "redact"],
        },
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "axes": {"level": "WARNING"},
        # Its INFO lines ("Generated GUID", "Clearing ... from the guid ContextVar") came two
        # per task: the id they name is on every line of the task already (request_id).
        "django_guid": {"level": "WARNING"},
        # Celery's two lines per task weigh on a market-open burst (docs/benchmarks.md), and
        # every order step has its own event line, Flower keeps the history, failures log at ERROR.
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
        "celery.beat": {"filters": ["beat_sends_at_debug"]},
        # uvicorn configures its own text handlers before Django starts: replaced here.
        "uvicorn": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
    },
}

# --- Periodic tasks (beat): the whole fixed schedule -------------------------------
# BUY/SELL slots are added at run time (strategies.scheduling), in the database.

CELERY_BEAT_SCHEDULE = {
    "strategies: sweep due BUY/SELL": {
        "task": TaskName.SWEEP_DUE.value,
        "schedule": timedelta(seconds=SCHEDULER_SWEEP_SECONDS),
        "options": {"expire_seconds": SCHEDULER_SWEEP_SECONDS},  # a stale sweep is superseded by the next
    },
    # Orders whose worker died mid-execution are settled by their tag from the database.
    "execution: settle interrupted orders": {
        "task": TaskName.SETTLE_ORDERS.value,
        "schedule": timedelta(seconds=ORDER_SETTLE_SECONDS),
        "options": {"expire_seconds": ORDER_SETTLE_SECONDS},
    },
    # Prices move unrealized P&L between fills: the day's loss limits of users holding positions.
    "execution: check loss limits": {
        "task": TaskName.CHECK_LOSS_LIMITS_HOLDING.value,
        "schedule": timedelta(seconds=LOSS_CHECK_SECONDS),
        "options": {"expire_seconds": LOSS_CHECK_SECONDS},
    },
    # Kite sessions end at 06:00 Asia/Kolkata; tell users before the first order fails.
    "brokers: expire ended broker sessions": {
        "task": TaskName.EXPIRE_BROKER_SESSIONS.value,
        "schedule": timedelta(minutes=1),
        "options": {"expire_seconds": 60},
    },
    # Kite publishes the day's instrument dump early each morning: 08:00 Asia/Kolkata (02:30 UTC).
    "brokers: refresh the instrument list": {
        "task": TaskName.REFRESH_INSTRUMENTS.value,
        "schedule": crontab(minute=30, hour=2, day_of_week="mon-fri"),
        "options": {"expire_seconds": 3600},
    },
    # Runs whose BUY is READINESS_MINUTES away are checked once (login, funds, instruments, venue).
    "strategies: morning readiness check": {
        "task": TaskName.READINESS_CHECK.value,
        "schedule": timedelta(minutes=1),
        "options": {"expire_seconds": 60},
    },
    "monitoring: deliver pending alerts": {
        "task": TaskName.ALERTS_NOTIFY_PENDING.value,
        "schedule": timedelta(minutes=1),
        "options": {"expire_seconds": 60},
    },
    "notifications: push pending notifications": {
        "task": TaskName.NOTIFICATIONS_PUSH_PENDING.value,
        "schedule": timedelta(minutes=1),
        "options": {"expire_seconds": 60},
    },
    "monitoring: beat heartbeat": {
        "task": TaskName.BEAT_HEARTBEAT.value,
        "schedule": timedelta(seconds=BEAT_HEARTBEAT_SECONDS),
        "options": {"expire_seconds": BEAT_HEARTBEAT_SECONDS},
    },
}
