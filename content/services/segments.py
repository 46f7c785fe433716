"""Segments: rules stored as JSON data, validated on save, compiled to ONE query over followers.

The rule language (a group is {"op": "and"|"or", "rules": [...]}; groups nest; {} or no rules = every follower):

    {"type": "tags", "match": "any"|"all"|"none", "tags": [tag ids]}
    {"type": "stage", "in": ["followed", "engaged", "interactive", "converted"]}
    {"type": "source_channel", "in": [channel ids]}          (first touch)
    {"type": "followed", "within_days": N} | {"older_than_days": N} | {"after": "YYYY-MM-DD"} | {"before": ...}
    {"type": "last_interaction", "within_days": N} | {"older_than_days": N}   (older also matches "never")
    {"type": "topics_preferred", "match": "any"|"all"|"none", "topics": [topic ids]}
    {"type": "score", "gte": N, "lte": M}                     (the lead score; either bound or both)
    {"type": "attribute", "key": "city", "op": "eq"|"ne"|"in"|"exists"|"missing"|"gt"|"gte"|"lt"|"lte"|"contains",
     "value": ...}

Everything compiles to Q objects and Exists subqueries on accounts.Subscriber: the database does the filtering.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Subscriber, Tag
from accounts.selectors import interacted_since, touch_pending

from ..errors import SegmentInvalid
from ..models import Segment, Topic

MAX_DEPTH = 5
MAX_RULES = 100
MAX_IDS = 1000
ATTRIBUTE_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MATCHES = ("any", "all", "none")
ATTRIBUTE_OPS = ("eq", "ne", "in", "exists", "missing", "gt", "gte", "lt", "lte", "contains")
RULE_TYPES = (
    "tags",
    "stage",
    "source_channel",
    "followed",
    "last_interaction",
    "topics_preferred",
    "attribute",
    "score",
)


def _fail(path: str, message: str) -> None:
    raise SegmentInvalid(_("Invalid segment rule at %(path)s: %(message)s") % {"path": path, "message": message},
                         extra={"path": path})  # fmt: skip


def _ids(value: Any, path: str, *, model, what: str) -> list[int]:
    if not isinstance(value, list) or not value:
        _fail(path, _("give a non-empty list of %(what)s ids.") % {"what": what})
    if len(value) > MAX_IDS or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        _fail(path, _("%(what)s ids must be whole numbers (at most %(max)d).") % {"what": what, "max": MAX_IDS})
    ids = sorted(set(value))
    found = set(model.objects.filter(pk__in=ids).values_list("pk", flat=True))
    missing = [i for i in ids if i not in found]
    if missing:
        _fail(path, _("unknown %(what)s ids: %(ids)s.") % {"what": what, "ids": ", ".join(map(str, missing))})
    return ids


def _days(rule: Mapping, path: str, *, dates: bool) -> dict[str, Any]:
    keys = ("within_days", "older_than_days", *(("after", "before") if dates else ()))
    given = {k: rule[k] for k in keys if k in rule}
    if not given:
        _fail(path, _("give one of %(keys)s.") % {"keys": ", ".join(keys)})
    out: dict[str, Any] = {}
    for key, value in given.items():
        if key.endswith("_days"):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 36500:
                _fail(f"{path}.{key}", _("a number of days between 0 and 36500."))
            out[key] = value
        else:
            try:
                out[key] = dt.date.fromisoformat(value).isoformat() if isinstance(value, str) else _fail(
                    f"{path}.{key}", _("a date as YYYY-MM-DD."))  # fmt: skip
            except ValueError:
                _fail(f"{path}.{key}", _("a date as YYYY-MM-DD."))
    return out


def _validate_rule(rule: Any, path: str, depth: int, counter: list[int]) -> dict[str, Any]:
    counter[0] += 1
    if counter[0] > MAX_RULES:
        _fail(path, _("at most %(max)d rules.") % {"max": MAX_RULES})
    if not isinstance(rule, dict):
        _fail(path, _("each rule is a JSON object."))
    if "type" not in rule:
        return _validate_group(rule, path, depth + 1, counter)
    kind = rule.get("type")
    if kind not in RULE_TYPES:
        _fail(f"{path}.type", _("unknown rule type %(type)r; use one of %(types)s.")
              % {"type": kind, "types": ", ".join(RULE_TYPES)})  # fmt: skip
    out: dict[str, Any] = {"type": kind}
    if kind in ("tags", "topics_preferred"):
        key, model, what = ("tags", Tag, _("tag")) if kind == "tags" else ("topics", Topic, _("topic"))
        match = rule.get("match", "any")
        if match not in MATCHES:
            _fail(f"{path}.match", _("match is one of any, all, none."))
        out.update(match=match, **{key: _ids(rule.get(key), f"{path}.{key}", model=model, what=what)})
    elif kind == "stage":
        values = rule.get("in")
        stages = Subscriber.Stage.values
        if not isinstance(values, list) or not values or any(v not in stages for v in values):
            _fail(f"{path}.in", _("a list of stages among %(stages)s.") % {"stages": ", ".join(stages)})
        out["in"] = sorted(set(values))
    elif kind == "source_channel":
        from campaigns.models import Channel

        out["in"] = _ids(rule.get("in"), f"{path}.in", model=Channel, what=_("channel"))
    elif kind in ("followed", "last_interaction"):
        out.update(_days(rule, path, dates=kind == "followed"))
    elif kind == "score":
        bounds = {k: rule[k] for k in ("gte", "lte") if k in rule}
        if not bounds or any(not isinstance(v, int) or isinstance(v, bool) for v in bounds.values()):
            _fail(path, _("give gte and/or lte as whole numbers."))
        out.update(bounds)
    elif kind == "attribute":
        key, op = rule.get("key"), rule.get("op", "eq")
        if not isinstance(key, str) or not ATTRIBUTE_KEY_RE.match(key):
            _fail(f"{path}.key", _("an attribute name of letters, digits and _ (at most 64)."))
        if op not in ATTRIBUTE_OPS:
            _fail(f"{path}.op", _("op is one of %(ops)s.") % {"ops": ", ".join(ATTRIBUTE_OPS)})
        out.update(key=key, op=op)
        if op not in ("exists", "missing"):
            if "value" not in rule:
                _fail(f"{path}.value", _("give a value."))
            value = rule["value"]
            if op == "in" and (not isinstance(value, list) or not value or len(value) > MAX_IDS):
                _fail(f"{path}.value", _("a non-empty list of values."))
            if op in ("gt", "gte", "lt", "lte") and (not isinstance(value, int | float) or isinstance(value, bool)):
                _fail(f"{path}.value", _("a number."))
            if op == "contains" and not isinstance(value, str):
                _fail(f"{path}.value", _("a text."))
            if isinstance(value, dict):
                _fail(f"{path}.value", _("a text, number, boolean or list."))
            out["value"] = value
    return out


def _validate_group(group: Any, path: str, depth: int, counter: list[int]) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        _fail(path, _("groups nest at most %(max)d deep.") % {"max": MAX_DEPTH})
    if not isinstance(group, dict):
        _fail(path, _("a group is a JSON object."))
    op = group.get("op", "and")
    if op not in ("and", "or"):
        _fail(f"{path}.op", _('op is "and" or "or".'))
    rules = group.get("rules", [])
    if not isinstance(rules, list):
        _fail(f"{path}.rules", _("rules is a list."))
    unknown = set(group) - {"op", "rules"}
    if unknown:
        _fail(path, _("unknown keys: %(keys)s.") % {"keys": ", ".join(sorted(unknown))})
    return {"op": op, "rules": [_validate_rule(r, f"{path}.rules[{i}]", depth, counter) for i, r in enumerate(rules)]}


def rules_validate(rules: Any) -> dict[str, Any]:
    """The rules in their normal form, or SegmentInvalid naming the first problem and where it is."""
    if rules in (None, "", [], {}):
        return {"op": "and", "rules": []}
    if isinstance(rules, list):
        rules = {"op": "and", "rules": rules}
    return _validate_group(rules, "rules", 1, [0])


# --- compiling ------------------------------------------------------------------------------------------------------


def _m2m(through, left: str, right: str, ids: list[int], match: str) -> Q:
    def exists(values: list[int]) -> Exists:
        return Exists(through.objects.filter(**{left: OuterRef("pk"), f"{right}__in": values}))

    if match == "any":
        return Q(exists(ids))
    if match == "none":
        return ~Q(exists(ids))
    q = Q()
    for one in ids:
        q &= Q(exists([one]))
    return q


def _compile_rule(rule: Mapping[str, Any], now: dt.datetime) -> Q:
    if "type" not in rule:
        return _compile_group(rule, now)
    kind = rule["type"]
    if kind == "tags":
        return _m2m(Subscriber.tags.through, "subscriber_id", "tag_id", rule["tags"], rule["match"])
    if kind == "topics_preferred":
        return _m2m(Subscriber.topics_preferred.through, "subscriber_id", "topic_id", rule["topics"], rule["match"])
    if kind == "stage":
        return Q(stage__in=rule["in"])
    if kind == "score":
        return Q(**{f"score__{k}": rule[k] for k in ("gte", "lte") if k in rule})
    if kind == "source_channel":
        return Q(source_channel_id__in=rule["in"])
    if kind in ("followed", "last_interaction"):
        field = "subscribed_at" if kind == "followed" else "last_interaction_at"

        def since(at: dt.datetime) -> Q:  # last_interaction: a message whose follow-ups are pending counts already
            return Q(**{f"{field}__gte": at}) if kind == "followed" else interacted_since(at)

        def silent_since(at: dt.datetime, *, never: bool = False) -> Q:
            older = Q(**{f"{field}__lt": at}) | (Q(**{f"{field}__isnull": True}) if never else Q())
            if kind == "followed":
                return older
            return older & ~touch_pending(at)

        q = Q()
        if "within_days" in rule:
            q &= since(now - dt.timedelta(days=rule["within_days"]))
        if "older_than_days" in rule:
            q &= silent_since(now - dt.timedelta(days=rule["older_than_days"]), never=kind == "last_interaction")
        tz = timezone.get_current_timezone()
        if "after" in rule:
            q &= since(dt.datetime.combine(dt.date.fromisoformat(rule["after"]), dt.time.min, tzinfo=tz))
        if "before" in rule:
            q &= silent_since(dt.datetime.combine(dt.date.fromisoformat(rule["before"]), dt.time.min, tzinfo=tz))
        return q
    if kind == "attribute":
        path, op, value = f"attributes__{rule['key']}", rule["op"], rule.get("value")
        if op == "exists":
            return Q(attributes__has_key=rule["key"])
        if op == "missing":
            return ~Q(attributes__has_key=rule["key"])
        if op == "eq":
            return Q(**{path: value})
        if op == "ne":
            return ~Q(**{path: value}) | ~Q(attributes__has_key=rule["key"])
        if op == "in":
            return Q(**{f"{path}__in": value})
        if op == "contains":
            return Q(**{f"{path}__icontains": value})
        return Q(**{f"{path}__{op}": value})
    raise SegmentInvalid(_("Unknown rule type %(type)r.") % {"type": kind})


def _compile_group(group: Mapping[str, Any], now: dt.datetime) -> Q:
    parts = [_compile_rule(r, now) for r in group.get("rules", [])]
    if not parts:
        return Q()
    q = parts[0]
    for part in parts[1:]:
        q = (q | part) if group.get("op") == "or" else (q & part)
    return q


def rules_compile(rules: Any, *, now: dt.datetime | None = None) -> Q:
    """The Q object of (validated) rules; relative dates are taken from `now`."""
    return _compile_group(rules_validate(rules) if not _is_normal(rules) else rules, now or timezone.now())


def _is_normal(rules: Any) -> bool:
    return isinstance(rules, dict) and set(rules) == {"op", "rules"}


def segment_subscribers(
    *, rules: Any, now: dt.datetime | None = None, following_only: bool = True
) -> QuerySet[Subscriber]:
    """The segment's members as one queryset (unfollowed excluded): nothing is filtered in Python."""
    qs = Subscriber.objects.filter(rules_compile(rules, now=now))
    if following_only:
        qs = qs.filter(is_following=True)
    return qs


def segment_save(*, segment: Segment, by: Any = None) -> Segment:
    """Validate the rules (SegmentInvalid) and save."""
    segment.rules = rules_validate(segment.rules)
    if segment.pk is None and by is not None and getattr(by, "pk", None):
        segment.created_by = by
    segment.save()
    return segment


def segment_create(*, name: str, rules: Any, description: str = "", by: Any = None) -> Segment:
    return segment_save(segment=Segment(name=name, rules=rules, description=description), by=by)


def segment_update(*, segment: Segment, data: Mapping[str, Any]) -> Segment:
    for name in ("name", "description", "rules"):
        if name in data:
            setattr(segment, name, data[name])
    return segment_save(segment=segment)
