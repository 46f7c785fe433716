"""Settings for the test suite. DATABASE_URL / REDIS_URL come from the environment (.ci/run and `make test`)."""

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# WhiteNoise warns about a missing STATIC_ROOT; tests never run collectstatic.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405

# Tests assert the product's source (English) messages. The product's default language stays zh-hans
# (settings/base.py); tests/wechat_crm/test_i18n.py checks the Chinese default explicitly with LANGUAGE_CODE="zh-hans".
LANGUAGE_CODE = "en"
