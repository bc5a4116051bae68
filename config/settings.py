"""Settings for the Privilege Service: one file, driven by the environment (12-factor).

With no variables set the service runs the *embedded default*: SQLite under ``var/``, Celery tasks run
in-process (eager), a local-memory cache, outbound integrations disabled. ``DATABASE_URL``,
``REDIS_URL`` / ``CELERY_BROKER_URL`` and ``CACHE_URL`` switch to PostgreSQL and Redis. Every variable is
listed in the README's configuration table; an optional ``.env`` file beside ``manage.py`` is read too.
"""

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off (set DEBUG=1 for local use).")
    SECRET_KEY = "insecure-local-development-key-never-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "config",  # before staticfiles: its runserver reads chunked bodies (config/chunked.py)
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "axes",
    "django_celery_beat",
    "tenancy",
    "outbox",
    "members",
    "tiers",
    "benefits",
    "points",
    "events",
    "integrations",
    "audit",
    "simulation",
    "reconciliation",
]

MIDDLEWARE = [
    "config.middleware.RequestIdMiddleware",
    "outbox.middleware.RelayAfterResponseMiddleware",
    "config.middleware.ProblemDetailsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

# --- Database -------------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'privilege.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    if env.bool("DATABASE_POOL", default=True):
        # psycopg 3's pool (Django >= 5.1); it needs CONN_MAX_AGE = 0.
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=2),
            "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=20),
            "timeout": env.int("DATABASE_POOL_TIMEOUT", default=30),
        }
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock up front, so two writers queue instead of failing
    # with "database is locked" half-way through; WAL lets readers run beside the writer.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and broker -----------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
CACHE_URL = env.str("CACHE_URL", default=REDIS_URL)
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
elif CACHE_URL:
    CACHES = {"default": env.cache_url_config(CACHE_URL)}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
# No broker configured: the embedded default runs every task in-process, at enqueue time.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://localhost/"  # a host named, or kombu warns at the first task
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "maintenance"
# Members per simulation chunk task: smaller chunks spread a backtest over more workers.
SIMULATION_CHUNK_SIZE = env.int("SIMULATION_CHUNK_SIZE", default=2000)
# Members per reconciliation chunk (one transaction each, the run's cursor committed with it).
RECONCILIATION_CHUNK_SIZE = env.int("RECONCILIATION_CHUNK_SIZE", default=500)
# A pending outbox message or delivery this many seconds past its schedule is reported stuck.
RECONCILIATION_STUCK_AFTER = env.float("RECONCILIATION_STUCK_AFTER", default=900.0)
CELERY_TASK_ROUTES = {
    "events.evaluate_*": {"queue": "events"},
    "outbox.*": {"queue": "outbox"},
    "events.sync_*": {"queue": "sync"},
}
# Periodic jobs (django-celery-beat installs these in its tables; editable in the admin).
CELERY_BEAT_SCHEDULE = {
    "deliver-outbox": {"task": "outbox.deliver", "schedule": env.float("OUTBOX_RELAY_INTERVAL", default=5.0)},
    "sweep-received-events": {
        "task": "events.sweep_received",
        "schedule": env.float("EVENT_SWEEP_INTERVAL", default=60.0),
    },
    "expire-benefit-grants": {"task": "benefits.expire_grants", "schedule": 300.0},
    "review-tiers": {"task": "events.review_tiers", "schedule": crontab(minute=15, hour="*/6")},
    "purge-idempotency-keys": {"task": "tenancy.purge_idempotency_keys", "schedule": crontab(minute=5)},
    "reconcile-nightly": {"task": "reconciliation.nightly", "schedule": crontab(minute=30, hour=19)},  # 02:30 UTC+7
}
# A request holds its Idempotency-Key this long while it runs (a crashed one frees it after that).
IDEMPOTENCY_LEASE_SECONDS = env.float("IDEMPOTENCY_LEASE_SECONDS", default=120.0)
# The sweeper re-enqueues events still ``received`` this many seconds after arrival (a lost task).
EVENT_SWEEP_AFTER = env.float("EVENT_SWEEP_AFTER", default=60.0)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# Seeds the jobs above once (created when missing, never written over): the admin's edits stick.
CELERY_BEAT_SCHEDULER = "config.beat:SeedOnceScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Outbox delivery (DOMAIN §8) ------------------------------------------------------------------
# Retries double from OUTBOX_RETRY_BASE seconds (±20 % jitter) up to OUTBOX_RETRY_CAP; after
# OUTBOX_MAX_ATTEMPTS a delivery is dead. 5 s doubling to a 12 h cap over 19 attempts ≈ 3 days in all.
OUTBOX_RETRY_BASE = env.float("OUTBOX_RETRY_BASE", default=5.0)
OUTBOX_RETRY_CAP = env.float("OUTBOX_RETRY_CAP", default=12 * 3600.0)
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=19)
OUTBOX_LEASE_SECONDS = env.float("OUTBOX_LEASE_SECONDS", default=60.0)
WEBHOOK_TIMEOUT = env.float("WEBHOOK_TIMEOUT", default=10.0)
# Webhook URLs may not reach private, loopback or link-local addresses unless this is set (tests do).
WEBHOOK_ALLOW_PRIVATE = env.bool("WEBHOOK_ALLOW_PRIVATE", default=False)
# Messages are published to the broker's topic exchange when a real broker is configured.
BROKER_PUBLISH = env.bool("BROKER_PUBLISH", default=not CELERY_TASK_ALWAYS_EAGER)
BROKER_EXCHANGE = env.str("BROKER_EXCHANGE", default="privilege.events")

# --- Auth -----------------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Admin login throttling (django-axes): 5 failures per username + address lock it for 15 minutes.
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("ADMIN_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

# API tokens: RS256 JWTs. Verification keys come from PEM files ("kid=path" or a path whose file name
# without extension is the kid) and/or a JWKS file; see tenancy/auth.py.
JWT_ISSUER = env.str("JWT_ISSUER", default="privilege-dev")
JWT_AUDIENCE = env.str("JWT_AUDIENCE", default="privilege-service")
JWT_PUBLIC_KEY_FILES = env.list("JWT_PUBLIC_KEY_FILES", default=[])
JWT_JWKS_FILE = env.str("JWT_JWKS_FILE", default="")
JWT_PRIVATE_KEY_FILE = env.str("JWT_PRIVATE_KEY_FILE", default="")
JWT_PRIVATE_KEY_ID = env.str("JWT_PRIVATE_KEY_ID", default="")
JWT_LEEWAY_SECONDS = env.int("JWT_LEEWAY_SECONDS", default=30)
# The local development key (created by `issue_token` under DATA_DIR) is trusted only with DEBUG on.
JWT_DEV_KEY_DIR = DATA_DIR / "jwt"

# --- API ------------------------------------------------------------------------------------------
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=2 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenancy.auth.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["config.api.HasScope"],
    "DEFAULT_PARSER_CLASSES": ["config.api.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "config.api.PageNumberPagination",
    "DEFAULT_FILTER_BACKENDS": ["config.filters.FilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "config.schema.ProjectAutoSchema",
    "EXCEPTION_HANDLER": "config.api.problem_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "PAGE_SIZE": 50,
    "COERCE_DECIMAL_TO_STRING": True,
    "DATETIME_FORMAT": "iso-8601",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Privilege Service API",
    "DESCRIPTION": "Loyalty tiers, benefits and point rules: the v1 contract. "
    "Authenticate with an RS256 JWT (`Authorization: Bearer ...`).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Several resources have a "status" with different choices: name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "PromotionRuleStatusEnum": "tiers.models.PromotionRule.Status",
        "MemberStatusEnum": "members.models.Member.Status",
        "BenefitTypeEnum": "benefits.models.Benefit.Type",
        "MemberEventTypeEnum": "members.models.EVENT_TYPES",
        "JobStatusEnum": "reconciliation.models.ReconciliationRun.Status",
    },
}

# --- Integrations (disabled when blank: their syncs are recorded as "skipped") ---------------------
# The relay delivers outbox messages to these services (integrations/adapters.py) with a bearer token,
# the message's (or point transaction's, or notification's) id as Idempotency-Key, and retries on
# timeouts, network errors, 429 and 5xx per the OUTBOX_* schedule above.
IAM_BASE_URL = env.str("IAM_BASE_URL", default="")
IAM_TOKEN = env.str("IAM_TOKEN", default="")
# POINT_SERVICE_BASE_URL is the name an earlier README used; POINT_SERVICE_URL wins when both are set.
POINT_SERVICE_URL = env.str("POINT_SERVICE_URL", default=env.str("POINT_SERVICE_BASE_URL", default=""))
POINT_SERVICE_TOKEN = env.str("POINT_SERVICE_TOKEN", default="")
NOTIFICATION_BASE_URL = env.str("NOTIFICATION_BASE_URL", default="")
NOTIFICATION_TOKEN = env.str("NOTIFICATION_TOKEN", default="")
INTEGRATION_CONNECT_TIMEOUT = env.float("INTEGRATION_CONNECT_TIMEOUT", default=3.0)
INTEGRATION_READ_TIMEOUT = env.float("INTEGRATION_READ_TIMEOUT", default=10.0)

# --- i18n, static ---------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Security headers (HTTPS termination is the proxy's job; these switch on behind it) -------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", False) else None
SESSION_COOKIE_SECURE = env.bool("BEHIND_TLS_PROXY", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Logging: one JSON line per record, with the request id; never bodies or PII -----------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.tracing.RequestIdFilter"}},
    "formatters": {"json": {"()": "config.tracing.JsonFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Our access log (config.middleware) covers every request; Django's own keeps only errors.
        "django.request": {"level": "ERROR", "propagate": True},
        "django.server": {"level": "ERROR", "propagate": True},
        "axes": {"level": "WARNING", "propagate": True},
    },
}
