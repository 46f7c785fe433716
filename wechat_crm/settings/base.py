"""Settings shared by every environment. Everything configurable comes from the environment.

Every variable read here is documented in README.md (section "Configuration").
"""

import contextlib
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(environ.Env().str("WECHAT_CRM_VAR_DIR", default=str(BASE_DIR / "var")))
# Every command (manage.py, gunicorn, the Celery worker and beat) may be the first to run with a new
# WECHAT_CRM_VAR_DIR: the SQLite files, the broker, the beat schedule and the static files go there.
with contextlib.suppress(OSError):  # read-only in production, where DATABASE_URL and REDIS_URL point elsewhere
    VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env(
    DJANGO_DEBUG=(bool, False),
    DJANGO_ALLOWED_HOSTS=(list, ["localhost", "127.0.0.1", "[::1]", "testserver"]),
    REDIS_URL=(str, ""),
    PORT=(int, 8000),
)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="insecure-dev-key-change-me-in-production-0123456789")
# Previous secret keys, still accepted for signatures (sessions, tracked links) while rotating (README, Security).
SECRET_KEY_FALLBACKS = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])
DEBUG = env("DJANGO_DEBUG")
IS_PRODUCTION = False  # True only in settings/production.py
ALLOWED_HOSTS = env("DJANGO_ALLOWED_HOSTS")
PORT = env("PORT")
# The public address of this server, for absolute links in outgoing messages (tracked links /r/<token>, /c/<slug>/).
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default=f"http://127.0.0.1:{PORT}")
# Tracked links (/r/<token>) older than this answer 410 Gone instead of redirecting and recording the click.
TRACKED_LINK_MAX_AGE_DAYS = env.int("TRACKED_LINK_MAX_AGE_DAYS", default=180)
# Repeated clicks of one tracked link by one subscriber within this many seconds count once.
TRACKED_LINK_CLICK_WINDOW = env.int("TRACKED_LINK_CLICK_WINDOW", default=300)
# Web authorisation (网页授权, snsapi_base; accounts/webauth.py): a tracked link opened in WeChat's browser goes
# through WeChat's authorise page first, so that the click is credited to whoever opened it (a forward reaches
# other people); the preferences page always does. WECHAT_OAUTH_BASE_URL is WeChat's authorise host (`make run`
# points it at the fake server); the signed `state` of one round trip is accepted for WEB_AUTH_STATE_MAX_AGE
# seconds, once. TRACKED_LINK_WEB_AUTH=false sends WeChat's browser straight to the target (an account without
# the web authorisation permission: WeChat gives it to verified service accounts).
WECHAT_OAUTH_BASE_URL = env.str("WECHAT_OAUTH_BASE_URL", default="https://open.weixin.qq.com/")
WEB_AUTH_STATE_MAX_AGE = env.int("WEB_AUTH_STATE_MAX_AGE", default=600)
TRACKED_LINK_WEB_AUTH = env.bool("TRACKED_LINK_WEB_AUTH", default=True)
# The shop hand-off: a link's destination gets `wxref=<signed reference to the person>` (never the openid), which
# the shop sends back as `ref` with its conversions; accepted for SHOP_REF_MAX_AGE_DAYS days.
SHOP_REF_MAX_AGE_DAYS = env.int("SHOP_REF_MAX_AGE_DAYS", default=30)
# How long the preferences page remembers the person web authorisation identified (its session), in seconds.
PREFERENCES_SESSION_SECONDS = env.int("PREFERENCES_SESSION_SECONDS", default=1800)

INSTALLED_APPS = [
    # django-unfold (the admin's look, its filters and its bundled assets) must come before django.contrib.admin.
    "unfold",
    "unfold.contrib.filters",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files served by us: no CDN (offline, and reachable from China)
    "axes",
    "wechat_crm",
    "accounts",
    "content",
    "campaigns",
    "conversations",
    "publishing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "wechat_crm.middleware.ApiJsonErrorsMiddleware",  # outside the others: it sees the response of any exception
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it turns a lockout into the lockout response
]

ROOT_URLCONF = "wechat_crm.urls"
WSGI_APPLICATION = "wechat_crm.wsgi.application"

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

# --- Database: DATABASE_URL, default a SQLite file (the embedded default) ---------------------
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'wechat_crm.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web server, worker and beat share the file: WAL and IMMEDIATE transactions avoid "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # The funnel's covering index (INCLUDE columns) is a PostgreSQL optimisation; SQLite builds it without them.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    # Django turns psycopg's server-side prepared statements off (for transaction-mode poolers). The callback's one
    # statement asks for one (accounts.record_sql._pg_execute): parsed and planned once per connection instead of on
    # every request. Django's own queries bind client-side and are never prepared, whatever the threshold.
    if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 2**31 - 1)
# Reports and exports read from a replica when REPORTS_DATABASE_URL is set (wechat_crm/db.py); writes never go there.
if env.str("REPORTS_DATABASE_URL", default=""):
    DATABASES["reports"] = env.db_url("REPORTS_DATABASE_URL")
    for key in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS", "OPTIONS"):
        if key in DATABASES["default"]:
            DATABASES["reports"].setdefault(key, DATABASES["default"][key])
DATABASE_ROUTERS = ["wechat_crm.db.ReportsRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: REDIS_URL, empty means the embedded default (database cache, SQLite broker) -------
REDIS_URL = env("REDIS_URL")
if REDIS_URL:
    # Django's Redis cache, keeping its Redis client between calls (wechat_crm/cache.py).
    CACHES = {"default": {"BACKEND": "wechat_crm.cache.RedisCache", "LOCATION": REDIS_URL}}
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "django_cache"}}
    CELERY_BROKER_URL = f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}"
    CELERY_BROKER_TRANSPORT_OPTIONS = {}

# --- Celery -----------------------------------------------------------------------------------
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
# Celery's Django fixup closes the worker's database connections before and after every task, unless it may reuse them
# for CELERY_DB_REUSE_MAX tasks: a new PostgreSQL connection (a backend started, its caches cold) for every push page
# and every callback follow-up. Out of reach here: the worker closes them as Django does around a request instead
# (wechat_crm.celery), so DATABASE_CONN_MAX_AGE and the health check on first use apply to tasks too.
CELERY_DB_REUSE_MAX = 2**62
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_CREATE_MISSING_QUEUES = True
CELERY_TIMEZONE = "Asia/Shanghai"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- WeChat -----------------------------------------------------------------------------------
WECHAT_APP_ID = env.str("WECHAT_APP_ID", default="wx_demo_app_id")
WECHAT_APP_SECRET = env.str("WECHAT_APP_SECRET", default="demo_app_secret")
WECHAT_TOKEN = env.str("WECHAT_TOKEN", default="demo_token")
# 43 characters; empty means plain mode (no encryption).
WECHAT_ENCODING_AES_KEY = env.str("WECHAT_ENCODING_AES_KEY", default="")
WECHAT_ENCODING_AES_KEY_PREVIOUS = env.str("WECHAT_ENCODING_AES_KEY_PREVIOUS", default="")
# With an AES key, a callback without encrypt_type=aes (a downgrade to plain mode) is refused unless this is true
# (WeChat's "compatible mode" while switching an account to safe mode). Without a key, plain mode is the only mode.
WECHAT_ALLOW_PLAIN_MODE = env.bool("WECHAT_ALLOW_PLAIN_MODE", default=False)
WECHAT_API_BASE_URL = env.str("WECHAT_API_BASE_URL", default="https://api.weixin.qq.com/")
WECHAT_CALLBACK_MAX_BODY = 64 * 1024
WECHAT_CALLBACK_MAX_CLOCK_SKEW = 300
# Outbound HTTP to WeChat (wechat_crm/wechat/http.py): timeouts in seconds, kept-alive pool, retries of safe requests.
WECHAT_HTTP_CONNECT_TIMEOUT = env.float("WECHAT_HTTP_CONNECT_TIMEOUT", default=3.0)
WECHAT_HTTP_TIMEOUT = env.float("WECHAT_HTTP_TIMEOUT", default=10.0)
WECHAT_HTTP_POOL_SIZE = env.int("WECHAT_HTTP_POOL_SIZE", default=8)
WECHAT_HTTP_MAX_RETRIES = env.int("WECHAT_HTTP_MAX_RETRIES", default=3)
WECHAT_HTTP_BACKOFF_BASE = env.float("WECHAT_HTTP_BACKOFF_BASE", default=0.25)
WECHAT_HTTP_BACKOFF_CAP = env.float("WECHAT_HTTP_BACKOFF_CAP", default=5.0)
# The shared access token (wechat_crm/wechat/tokens.py) is refreshed this many seconds before it expires (inside
# the last 5 minutes, when WeChat's stable token call hands out the next token; capped at a third of the token's
# lifetime).
WECHAT_TOKEN_REFRESH_MARGIN = env.int("WECHAT_TOKEN_REFRESH_MARGIN", default=180)
# Outbound rate limit per API group, shared by all workers through Redis: (requests per second, burst); rate 0 = off.
# Override groups with e.g. WECHAT_RATE_LIMITS="template=500:200,custom=100:50".
WECHAT_RATE_LIMITS = {
    "template": (2000.0, 500),
    "custom": (200.0, 100),
    "notice": (500.0, 200),
    "mass": (10.0, 10),
    "user": (200.0, 100),
    "default": (100.0, 50),
}
for _item in env.list("WECHAT_RATE_LIMITS", default=[]):
    _group, _sep, _spec = _item.partition("=")
    _rate, _sep, _burst = _spec.partition(":")
    try:
        WECHAT_RATE_LIMITS[_group.strip()] = (float(_rate), int(_burst or max(1, int(float(_rate)))))
    except ValueError:
        raise ImproperlyConfigured(
            f"WECHAT_RATE_LIMITS: {_item!r} is not group=rate[:burst], e.g. template=500:200"
        ) from None
# Longest a call waits for a rate-limit slot before giving up with WeChatLocalRateLimited.
WECHAT_RATE_LIMIT_MAX_WAIT = env.float("WECHAT_RATE_LIMIT_MAX_WAIT", default=5.0)
# Auto-reply rules' regular expressions (conversations.replies) give up after this many seconds on one message.
AUTO_REPLY_REGEX_TIMEOUT = env.float("AUTO_REPLY_REGEX_TIMEOUT", default=0.05)
# Lead score (conversations.services): each interaction's points halve every this many days.
SCORE_HALF_LIFE_DAYS = env.float("SCORE_HALF_LIFE_DAYS", default=30.0)
# Pushes (content/services/deliveries/): messages sent in parallel by one page task over the kept-alive pool, and
# deliveries per page task, e.g. PUSH_PAGE_SIZES="template=500,custom=500".
PUSH_SEND_THREADS = env.int("PUSH_SEND_THREADS", default=4)
PUSH_PAGE_SIZES = {}
for _item in env.list("PUSH_PAGE_SIZES", default=[]):
    _channel, _sep, _size = _item.partition("=")
    try:
        PUSH_PAGE_SIZES[_channel.strip()] = int(_size)
    except ValueError:
        raise ImproperlyConfigured(f"PUSH_PAGE_SIZES: {_item!r} is not channel=size, e.g. template=500") from None
# A page task claims, decides and writes its rows PUSH_WRITE_EVERY at a time (a few statements per chunk, so a larger
# chunk costs less per message): a worker killed mid-page leaves at most that many rows "sending"; with Redis, those
# whose message never started go back to the queue and those WeChat accepted become sent (content.services.deliveries.
# StartMarks), only the requests in flight become unknown; without Redis, all of them become unknown (never resent).
PUSH_WRITE_EVERY = env.int("PUSH_WRITE_EVERY", default=250)
# Outbound messages (journeys, auto-replies, replies: conversations.outbound) are claimed, decided and written
# OUTBOUND_WRITE_EVERY at a time (a worker killed mid-chunk leaves at most that many "sending", then unknown, never
# resent), sent PUSH_SEND_THREADS at a time; one page task sends up to OUTBOUND_PAGE_LIMIT, then hands over.
OUTBOUND_WRITE_EVERY = env.int("OUTBOUND_WRITE_EVERY", default=50)
OUTBOUND_PAGE_LIMIT = env.int("OUTBOUND_PAGE_LIMIT", default=1000)
# The beat's safety net treats a push's page as stalled (its worker died, or its task was lost with the broker) when
# its rows have been queued or sending for this long; a live page sends its rows in seconds.
PUSH_STALLED_AFTER_SECONDS = env.int("PUSH_STALLED_AFTER_SECONDS", default=300)
# Profile fetch after a follow (accounts.profiles): wait this long to batch follows into one batch profile call,
# and retry a failed batch after at most this many seconds (45009 would otherwise wait until midnight).
PROFILE_FETCH_DELAY = env.float("PROFILE_FETCH_DELAY", default=1.0)
PROFILE_FETCH_RETRY_MAX_DELAY = env.float("PROFILE_FETCH_RETRY_MAX_DELAY", default=900.0)
# A journey's first step that shows the profile ({nickname}) waits at most this many seconds after the follow for
# the profile fetch (conversations.journeys.profile_wait), then goes with a neutral word instead of the name.
JOURNEY_PROFILE_WAIT = env.float("JOURNEY_PROFILE_WAIT", default=20.0)

# --- Auth, i18n, static -------------------------------------------------------------------------
# django-axes throttles admin logins: AXES_FAILURE_LIMIT failures per username and client address lock the pair out
# for AXES_COOLOFF_HOURS (the pair, so one attacker cannot lock every operator out). The client address is read from
# X-Forwarded-For behind TRUSTED_PROXY_COUNT proxies (wechat_crm.security.client_ip), never the proxy's own.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "wechat_crm.security.client_ip"
# RoleBackend is Django's ModelBackend with the permissions on our models taken from the roles
# (wechat_crm/permissions.py), so that the admin and the API apply the same rules.
AUTHENTICATION_BACKENDS = ["wechat_crm.security.LoginThrottleBackend", "wechat_crm.permissions.RoleBackend"]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = env.str("DJANGO_LANGUAGE_CODE", default="zh-hans")
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = VAR_DIR / "media"
# Django serves MEDIA_URL itself when true (a production without a reverse proxy for uploads); under DEBUG it does.
SERVE_MEDIA = env.bool("SERVE_MEDIA", default=False)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- The admin (django-unfold) ------------------------------------------------------------------
# Everything it serves comes from its own static files (Alpine, HTMX, Chart.js, the icon font): no CDN.
UNFOLD = {
    "SITE_TITLE": _("WeChat CRM"),
    "SITE_HEADER": _("WeChat CRM"),
    "SITE_SYMBOL": "forum",
    "SHOW_LANGUAGES": False,
    "DASHBOARD_CALLBACK": "wechat_crm.dashboard.dashboard_callback",
    "SIDEBAR": {"show_search": True, "show_all_applications": True},
}

# --- REST API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "wechat_crm.authentication.RoleTokenAuthentication",  # DRF's, with the roles in the same query
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Every view checks the roles (wechat_crm/permissions.py) unless it names stricter classes.
    "DEFAULT_PERMISSION_CLASSES": ["wechat_crm.permissions.RolePermission"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "wechat_crm.exceptions.api_exception_handler",
    # Per user (per address when anonymous), counted in the cache; the funnel reports and the exports, which cost
    # the database the most, have their own tighter scopes (views' `throttle_scope`). Over the rate: 429.
    "DEFAULT_THROTTLE_CLASSES": [
        "wechat_crm.throttling.AnonRateThrottle",
        "wechat_crm.throttling.UserRateThrottle",
        "wechat_crm.throttling.ScopedRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_THROTTLE_ANON", default="60/min"),
        "user": env.str("API_THROTTLE_USER", default="1200/min"),
        "reports": env.str("API_THROTTLE_REPORTS", default="30/min"),
        "exports": env.str("API_THROTTLE_EXPORTS", default="10/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "wechat_crm API",
    "DESCRIPTION": "Subscribers, content, pushes, campaigns and the funnel of a WeChat Official Account.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/schema/ and /api/docs/ are for staff (the docs page sends the admin's login there first).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAdminUser"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Metrics (/metrics, wechat_crm/metrics.py) ---------------------------------------------------------
# METRICS_TOKEN set: scrapes must send "Authorization: Bearer <token>". Database figures are cached this long.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_DB_CACHE_SECONDS = env.int("METRICS_DB_CACHE_SECONDS", default=15)

# --- Logging: openids never at INFO -------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_openids": {"()": "wechat_crm.logging.OpenidMaskFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["mask_openids"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
