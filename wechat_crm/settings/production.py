"""Production settings: secrets only from the environment, secure cookies, JSON logs without openids.

They refuse to load (ImproperlyConfigured) rather than run unsafe: DJANGO_SECRET_KEY (50+ random characters),
DJANGO_ALLOWED_HOSTS, WECHAT_TOKEN (16+ characters), WECHAT_ENCODING_AES_KEY (43 characters) unless
WECHAT_ALLOW_PLAIN_MODE=true, an https:// PUBLIC_BASE_URL and METRICS_TOKEN (16+ characters) are required; for a
working server also DATABASE_URL, REDIS_URL, WECHAT_APP_ID and WECHAT_APP_SECRET.
Every variable is documented in README.md ("Production" and "Security").
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import LOGGING, env

SECRET_KEY = env.str("DJANGO_SECRET_KEY")  # no default: a production server never starts with a known key
if len(SECRET_KEY) < 50 or SECRET_KEY.startswith("insecure-"):
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be at least 50 random characters")
DEBUG = False
IS_PRODUCTION = True  # the demo commands and the fake WeChat server refuse to run (wechat_crm.demo)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[f"https://{h}" for h in ALLOWED_HOSTS])
# WeChat's credentials: never the demo values of base.py. AppID and AppSecret are empty until set (calls to WeChat
# then fail with a clear error, which /healthz and the logs show). The callback's Token and EncodingAESKey are
# what authenticates WeChat: without them anyone could sign a callback, so production does not start.
WECHAT_APP_ID = env.str("WECHAT_APP_ID", default="")
WECHAT_APP_SECRET = env.str("WECHAT_APP_SECRET", default="")
WECHAT_TOKEN = env.str("WECHAT_TOKEN", default="")
WECHAT_CALLBACK_MIN_TOKEN_LENGTH = 16
if len(WECHAT_TOKEN) < WECHAT_CALLBACK_MIN_TOKEN_LENGTH or WECHAT_TOKEN == "demo_token":  # noqa: S105
    raise ImproperlyConfigured(
        f"WECHAT_TOKEN must be at least {WECHAT_CALLBACK_MIN_TOKEN_LENGTH} random characters (WeChat accepts up to "
        "32 letters and digits): with an empty or short token anyone can sign a callback"
    )
WECHAT_ENCODING_AES_KEY = env.str("WECHAT_ENCODING_AES_KEY", default="")
WECHAT_ALLOW_PLAIN_MODE = env.bool("WECHAT_ALLOW_PLAIN_MODE", default=False)
if WECHAT_ENCODING_AES_KEY and len(WECHAT_ENCODING_AES_KEY) != 43:
    raise ImproperlyConfigured("WECHAT_ENCODING_AES_KEY must be the 43 characters of WeChat's EncodingAESKey")
if not WECHAT_ENCODING_AES_KEY and not WECHAT_ALLOW_PLAIN_MODE:
    raise ImproperlyConfigured(
        "WECHAT_ENCODING_AES_KEY is required (safe mode); set WECHAT_ALLOW_PLAIN_MODE=true to run the callback in "
        "plain mode on purpose"
    )
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="")
if not PUBLIC_BASE_URL.startswith("https://"):
    raise ImproperlyConfigured(
        "PUBLIC_BASE_URL must be the https:// address of this server, e.g. https://crm.example.com"
    )
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
if len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured(
        "METRICS_TOKEN must be at least 16 random characters: /metrics and the details of /healthz need it"
    )

# Behind a reverse proxy that terminates TLS and sets X-Forwarded-Proto (see README, "Production"), and appends the
# client's address to X-Forwarded-For: the login lockout reads it there (wechat_crm.security.client_ip).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=1)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# WeChat calls the callback over plain HTTP when the account is configured with an http:// URL; the proxy decides.
SECURE_REDIRECT_EXEMPT = [r"^wechat/", r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LOGGING = {
    **LOGGING,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["mask_openids"]},
    },
}
