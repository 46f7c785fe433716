"""Settings for the test suite. DATABASE_URL / REDIS_URL come from the environment (.ci/run and `make test`)."""

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# WhiteNoise warns about a missing STATIC_ROOT; tests never run collectstatic.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405

# Tests assert the product's source (English) messages. The product's default language stays zh-hans
# (settings/base.py); tests/wechat_crm/test_i18n.py checks the Chinese default explicitly with LANGUAGE_CODE="zh-hans".
LANGUAGE_CODE = "en"

# Tests never reach WeChat: a test that forgets the fake (the `fake_wechat` fixture) meets a closed port, and the fake
# server and the demo commands, which refuse a real WeChat API, run.
WECHAT_API_BASE_URL = env.str("WECHAT_API_BASE_URL", default="http://127.0.0.1:9/")  # noqa: F405
WECHAT_OAUTH_BASE_URL = env.str("WECHAT_OAUTH_BASE_URL", default="http://127.0.0.1:9/")  # noqa: F405

# The suite's clients share one address and many requests a minute: the product's rates would turn unrelated tests
# into 429s. tests/security/test_api_throttling.py puts the product's rates back (wechat_crm.throttling reads them
# on each request).
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": dict.fromkeys(REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "100000/min"),  # noqa: F405
}
