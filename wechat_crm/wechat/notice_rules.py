"""WeChat's rules for the values of a subscription notice's keywords (订阅通知的参数值内容限制).

A keyword's key names its rule: "thing1" is a `thing`, "character_string2" a `character_string`. WeChat refuses a
send whose value breaks its rule (47003), so the product checks values before anything is queued:
`value_error(key, value)` says what is wrong, or None.

  thing             at most 20 characters: Chinese, letters, digits, symbols
  number            at most 32 digits, may have decimals
  letter            at most 32 letters
  symbol            at most 5 symbols
  character_string  at most 32 digits, letters or symbols (no Chinese)
  time              24-hour time (HH:MM or HH:MM:SS), may follow a date; a range joins two with "~"
  date              a date (2019年10月1日, 2019年10月, 10月1日, 2019-10-01, 2019/10/01, 2019.10.01, 2019-10, 10-01),
                    may be followed by a time; a range joins two with "~"
  amount            one currency symbol, at most 10 digits, may have decimals, may end with "元"
  phone_number      at most 17 digits and symbols
  car_number        at most 8 characters; the first and last may be Chinese, the rest letters or digits
  name              at most 10 Chinese characters, or at most 20 letters or symbols (mixed counts as Chinese)
  phrase            at most 5 Chinese characters
  enum              one of the values configured on WeChat (not checked here)
Symbols are the common ones other than Chinese, letters and digits; no value may hold a line break or another
control character. Pure functions: no I/O, no settings, no models.
"""

from __future__ import annotations

import re

from django.utils.translation import gettext as _

RULES = ("thing", "number", "letter", "symbol", "character_string", "time", "date", "amount", "phone_number",
         "car_number", "name", "phrase", "enum")  # fmt: skip

_KEY = re.compile(r"^([a-z_]+?)(\d+)$")
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAS_CJK = re.compile(f"[{_CJK}]")
_ONLY_CJK = re.compile(f"^[{_CJK}]+$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_LETTERS = re.compile(r"^[A-Za-z]+$")
_TIME = r"([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d)?"
_DATE = (
    r"(\d{4}年\d{1,2}月\d{1,2}日|\d{4}年\d{1,2}月|\d{1,2}月\d{1,2}日"
    r"|\d{4}(?P<sep>[-/.])\d{1,2}(?P=sep)\d{1,2}|\d{4}-\d{1,2}|\d{1,2}-\d{1,2})"
)
_TIME_ONE = re.compile(rf"^({_DATE}\s*)?{_TIME}$")
_DATE_ONE = re.compile(rf"^{_DATE}(\s*{_TIME})?$")
_AMOUNT = re.compile(r"^[¥￥$€£]?(\d{1,10})(\.\d+)?元?$")
_PHONE = re.compile(r"^[0-9+\-() ]+$")
_CAR = re.compile(f"^[{_CJK}A-Za-z0-9][A-Za-z0-9]*[{_CJK}A-Za-z0-9]?$")


def rule_of(key: str) -> str:
    """The rule a keyword's key names ("thing1" -> "thing"); "" when the key names none of WeChat's rules."""
    match = _KEY.match(key or "")
    return match.group(1) if match and match.group(1) in RULES else ""


def _is_symbols(value: str) -> bool:
    return all(not (ch.isalnum() or ch.isspace() or _HAS_CJK.match(ch)) for ch in value)


def _range_ok(value: str, pattern: re.Pattern) -> bool:
    parts = [part.strip() for part in value.split("~")]
    return 1 <= len(parts) <= 2 and all(pattern.match(part) for part in parts)


def value_error(key: str, value: str) -> str | None:
    """What is wrong with `value` for the keyword `key` under WeChat's rules, or None when WeChat accepts it."""
    rule = rule_of(key)
    if not rule:
        return _("%(key)s is not a keyword WeChat knows (thing1, number2, time3 ...).") % {"key": key}
    if not isinstance(value, str) or not value.strip():
        return _("A value is required.")
    if any(ch in value for ch in "\r\n\t") or not value.isprintable():
        return _("No line breaks or control characters.")
    n = len(value)
    if rule == "thing" and n > 20:
        return _("At most 20 characters (%(n)d given).") % {"n": n}
    if rule == "number" and (n > 32 or not _NUMBER.match(value)):
        return _("Digits only (at most 32, decimals allowed).")
    if rule == "letter" and (n > 32 or not _LETTERS.match(value)):
        return _("Letters only (at most 32).")
    if rule == "symbol" and (n > 5 or not _is_symbols(value)):
        return _("Symbols only (at most 5).")
    if rule == "character_string" and (n > 32 or _HAS_CJK.search(value) or " " in value):
        return _("At most 32 digits, letters or symbols, no Chinese.")
    if rule == "time" and not _range_ok(value, _TIME_ONE):
        return _("A 24-hour time such as 15:01 or 2019年10月1日 15:01 (a range joins two with ~).")
    if rule == "date" and not _range_ok(value, _DATE_ONE):
        return _("A date such as 2019年10月1日 or 2019-10-01, may be followed by a time (a range joins two with ~).")
    if rule == "amount" and not _AMOUNT.match(value):
        return _("One currency symbol and at most 10 digits, decimals allowed, may end with 元 (e.g. ¥99.50).")
    if rule == "phone_number" and (n > 17 or not _PHONE.match(value)):
        return _("At most 17 digits and symbols (e.g. +86-0766-66888866).")
    if rule == "car_number" and (n > 8 or not _CAR.match(value)):
        return _("A plate number of at most 8 characters (e.g. 粤A8Z888挂).")
    if rule == "name":
        if _HAS_CJK.search(value):
            if n > 10:
                return _("At most 10 characters for a Chinese name.")
        elif n > 20 or any(ch.isdigit() for ch in value):
            return _("At most 20 letters or symbols, or 10 Chinese characters.")
    if rule == "phrase" and (n > 5 or not _ONLY_CJK.match(value)):
        return _("At most 5 Chinese characters.")
    return None


def values_errors(values: dict[str, str], keys: list[str]) -> dict[str, list[str]]:
    """Every problem of a notice's values, by keyword: each of the template's `keys` needs a valid value, and no
    other key may be given."""
    errors: dict[str, list[str]] = {}
    if not isinstance(values, dict):
        return {"": [_("The values must be an object of keyword: value.")]}
    for key in keys:
        problem = value_error(key, values.get(key, ""))
        if problem:
            errors[key] = [problem]
    for key in values:
        if key not in keys:
            errors[key] = [_("The template has no keyword %(key)s.") % {"key": key}]
    return errors
