"""The per-subscriber rendering of WeChat template messages' fields, and the save-time check of those fields.

Each field's value is a Django template string compiled by a private Engine (no autoescaping: WeChat's values are
plain text; no template libraries, no loaders). A value may use only:
  - variables from CONTEXT_SCHEMA (subscriber.nickname, article.title, push.id ...; never openids),
  - any built-in filter (`default`, `date`, `truncatechars` ...),
  - the tags {% if %}, {% with %}, {% firstof %}, {% now %} and {% comment %}.
`fields_check` refuses anything else when the operator saves (a syntax error, an unknown variable or tag, a value
that fails to render against a sample context), so sending never meets a template error.

Compiled fields are cached per (template id, version); `version` grows on every save (content.services).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.template import Context, Engine, TemplateSyntaxError
from django.template.base import (
    FilterExpression,
    Node,
    NodeList,
    TextNode,
    Variable,
    VariableNode,
    render_value_in_context,
)
from django.template.defaulttags import CommentNode, FirstOfNode, IfNode, NowNode, WithNode
from django.utils.translation import gettext as _

from .errors import TemplateInvalid

# What a field's value may refer to. Personal identifiers (openid, unionid) are deliberately absent.
SUBSCRIBER_FIELDS = ("id", "nickname", "remark", "sex", "city", "province", "country", "language", "subscribed_at")
ARTICLE_FIELDS = ("id", "title", "digest", "author", "url", "published_at")
# The renderable fields of a Push.
PUSH_FIELDS = ("id", "name", "send_at")
CONTEXT_SCHEMA: dict[str, tuple[str, ...]] = {
    "subscriber": SUBSCRIBER_FIELDS,
    "article": ARTICLE_FIELDS,
    "push": PUSH_FIELDS,
}
ALLOWED_TAGS = ("if", "with", "firstof", "now", "comment")
_ALLOWED_NODES = (TextNode, VariableNode, IfNode, WithNode, FirstOfNode, NowNode, CommentNode)

KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
COLOR_RE = re.compile(r"^#[0-9A-Fa-f]{6}$")
MAX_FIELDS = 20
MAX_VALUE_LENGTH = 2000

_SAMPLE_TIME = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
SAMPLE_CONTEXT: dict[str, dict[str, Any]] = {
    "subscriber": {
        "id": 1,
        "nickname": "小明",
        "remark": "",
        "sex": "",
        "city": "",
        "province": "",
        "country": "",
        "language": "zh_CN",
        "subscribed_at": _SAMPLE_TIME,
    },
    "article": {"id": 1, "title": "标题", "digest": "", "author": "", "url": "https://example.com/c/a/"},
    "push": {"id": 1, "name": "push", "send_at": _SAMPLE_TIME},
}
SAMPLE_CONTEXT["article"]["published_at"] = _SAMPLE_TIME

_engine: Engine | None = None


def engine() -> Engine:
    global _engine
    if _engine is None:
        _engine = Engine(dirs=[], app_dirs=False, loaders=[], libraries={}, autoescape=False, string_if_invalid="")
    return _engine


# --- The save-time check ------------------------------------------------------------------------------------------


def _node_tag(node: Node) -> str:
    token = getattr(node, "token", None)
    contents = getattr(token, "contents", "") or ""
    return contents.split()[0] if contents else type(node).__name__


class _Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, message: str) -> None:
        if message not in self.errors:
            self.errors.append(message)

    def variable(self, var: Variable, scope: set[str]) -> None:
        lookups = var.lookups
        if lookups is None:  # a literal: "text", 3
            return
        root = lookups[0]
        if root in scope:
            return
        name = ".".join(lookups)
        allowed = CONTEXT_SCHEMA.get(root)
        if allowed is None or len(lookups) != 2 or lookups[1] not in allowed:
            self.error(
                _('Unknown variable "%(name)s". Available: %(available)s.')
                % {"name": name, "available": ", ".join(f"{r}.{f}" for r, fs in CONTEXT_SCHEMA.items() for f in fs)}
            )

    def expression(self, fe: FilterExpression, scope: set[str]) -> None:
        if isinstance(fe.var, Variable):
            self.variable(fe.var, scope)
        for _func, args in fe.filters:
            for is_lookup, arg in args:
                if is_lookup and isinstance(arg, Variable):
                    self.variable(arg, scope)

    def condition(self, cond: Any, scope: set[str]) -> None:
        if cond is None:
            return
        value = getattr(cond, "value", None)
        if isinstance(value, FilterExpression):
            self.expression(value, scope)
            return
        self.condition(getattr(cond, "first", None), scope)
        self.condition(getattr(cond, "second", None), scope)

    def nodelist(self, nodelist: NodeList, scope: set[str]) -> None:
        for node in nodelist:
            if not isinstance(node, _ALLOWED_NODES):
                self.error(
                    _("The tag {%% %(tag)s %%} is not allowed here. Allowed tags: %(tags)s.")
                    % {"tag": _node_tag(node), "tags": ", ".join(ALLOWED_TAGS)}
                )
            elif isinstance(node, VariableNode):
                self.expression(node.filter_expression, scope)
            elif isinstance(node, IfNode):
                for cond, body in node.conditions_nodelists:
                    self.condition(cond, scope)
                    self.nodelist(body, scope)
            elif isinstance(node, WithNode):
                for fe in node.extra_context.values():
                    self.expression(fe, scope)
                self.nodelist(node.nodelist, scope | set(node.extra_context))
            elif isinstance(node, FirstOfNode):
                for fe in node.vars:
                    self.expression(fe, scope)
                if node.asvar:
                    scope.add(node.asvar)
            elif isinstance(node, NowNode) and node.asvar:
                scope.add(node.asvar)


def value_check(value: str) -> list[str]:
    """The problems of one field value (empty list: fine): syntax, tags, variables, then a render with sample data."""
    try:
        compiled = engine().from_string(value)
    except TemplateSyntaxError as exc:
        return [_("Template syntax error: %(error)s") % {"error": exc}]
    checker = _Checker()
    for node in compiled.nodelist.get_nodes_by_type(TextNode):
        if any(d in node.s for d in ("{{", "}}", "{%", "%}")):
            checker.error(_("Unclosed or stray template delimiter in %(text)s.") % {"text": repr(node.s.strip()[:60])})
    checker.nodelist(compiled.nodelist, set())
    if checker.errors:
        return checker.errors
    try:
        compiled.render(Context(SAMPLE_CONTEXT, autoescape=False))
    except Exception as exc:  # any failure of a filter on sample data: report it, never crash the save
        return [_("The value does not render: %(error)s") % {"error": exc}]
    return []


def fields_check(fields: Any) -> list[dict[str, str]]:
    """Validate a template's `fields` and return them normalised ({key, value, color}); raise TemplateInvalid."""
    if not isinstance(fields, list):
        raise TemplateInvalid({"": [_('Fields must be a list of {"key", "value", "color"} objects.')]})
    if not fields:
        raise TemplateInvalid({"": [_("Add at least one field.")]})
    if len(fields) > MAX_FIELDS:
        raise TemplateInvalid({"": [_("At most %(n)d fields are allowed.") % {"n": MAX_FIELDS}]})
    errors: dict[str, list[str]] = {}
    cleaned: list[dict[str, str]] = []
    seen: set[str] = set()
    for position, item in enumerate(fields, start=1):
        label = f"#{position}"
        if not isinstance(item, Mapping):
            errors[label] = [_('Each field must be an object with "key", "value" and "color".')]
            continue
        unknown = set(item) - {"key", "value", "color"}
        key, value, color = item.get("key"), item.get("value", ""), item.get("color") or ""
        problems: list[str] = []
        if unknown:
            problems.append(_("Unknown attributes: %(names)s.") % {"names": ", ".join(sorted(map(str, unknown)))})
        if not isinstance(key, str) or not KEY_RE.match(key.strip()):
            problems.append(
                _("The key must be WeChat's field name: a letter, then letters, digits or _ (e.g. keyword1).")
            )
        else:
            key = key.strip()
            label = key
            if key in seen:
                problems.append(_('The key "%(key)s" is used twice.') % {"key": key})
            seen.add(key)
        if not isinstance(color, str) or (color and not COLOR_RE.match(color.strip())):
            problems.append(_("The colour must be empty or like #173177."))
        if not isinstance(value, str):
            problems.append(_("The value must be text."))
        elif len(value) > MAX_VALUE_LENGTH:
            problems.append(_("The value is longer than %(n)d characters.") % {"n": MAX_VALUE_LENGTH})
        else:
            problems.extend(value_check(value))
        if problems:
            errors.setdefault(label, []).extend(problems)
        else:
            cleaned.append({"key": key, "value": value, "color": color.strip().upper()})
    if errors:
        raise TemplateInvalid(errors)
    return cleaned


# --- Rendering ----------------------------------------------------------------------------------------------------

CompiledFields = tuple[tuple[str, Any, str], ...]
_CACHE_SIZE = 512
_cache: OrderedDict[tuple[int, int], CompiledFields] = OrderedDict()
_cache_lock = threading.Lock()


def compile_fields(fields: list[dict[str, str]]) -> CompiledFields:
    e = engine()
    return tuple((f["key"], e.from_string(f.get("value", "")), f.get("color") or "") for f in fields)


def compiled_for(template: Any) -> CompiledFields:
    """The compiled fields of a MessageTemplate, cached per (id, version) in this process."""
    if template.pk is None:
        return compile_fields(template.fields)
    cache_key = (template.pk, template.version)
    with _cache_lock:
        compiled = _cache.get(cache_key)
        if compiled is not None:
            _cache.move_to_end(cache_key)
            return compiled
    compiled = compile_fields(template.fields)
    with _cache_lock:
        _cache[cache_key] = compiled
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled


def subscriber_context(subscriber: Any) -> dict[str, Any]:
    """The renderable fields of a Subscriber (or of a mapping with the same keys, e.g. from `.values()`)."""
    if isinstance(subscriber, Mapping):
        return {f: subscriber.get(f, "") for f in SUBSCRIBER_FIELDS}
    context = {f: getattr(subscriber, f, "") for f in SUBSCRIBER_FIELDS}
    if hasattr(subscriber, "get_sex_display"):
        context["sex"] = subscriber.get_sex_display() if subscriber.sex else ""
    return context


def article_context(article: Any) -> dict[str, Any]:
    if article is None:
        return {}
    if isinstance(article, Mapping):
        return {f: article.get(f, "") for f in ARTICLE_FIELDS}
    return {
        "id": article.pk,
        "title": article.title,
        "digest": article.digest,
        "author": article.author,
        "url": article.public_url(),
        "published_at": article.published_at,
    }


def render_fields(compiled: CompiledFields, context: dict[str, Any]) -> dict[str, dict[str, str]]:
    ctx = Context(context, autoescape=False)
    data: dict[str, dict[str, str]] = {}
    for key, tpl, color in compiled:
        item = {"value": tpl.render(ctx)}
        if color:
            item["color"] = color
        data[key] = item
    return data


def _subscriber_field(node: Node) -> str | None:
    """The field of a plain {{ subscriber.<field> }} (no filter), else None."""
    fe = getattr(node, "filter_expression", None)
    if not isinstance(node, VariableNode) or fe.filters or not isinstance(fe.var, Variable):
        return None
    lookups = fe.var.lookups or ()
    if len(lookups) == 2 and lookups[0] == "subscriber" and lookups[1] in SUBSCRIBER_FIELDS:
        return lookups[1]
    return None


def _mentions_subscriber(node: Node) -> bool:
    """Whether a text or {{ variable }} node reads anything of the subscriber (any other node: assume it does)."""
    if isinstance(node, TextNode):
        return False
    if not isinstance(node, VariableNode):
        return True
    fe = node.filter_expression
    names = [fe.var] + [arg for _func, args in fe.filters for is_lookup, arg in args if is_lookup]
    return any(isinstance(v, Variable) and v.lookups and v.lookups[0] == "subscriber" for v in names)


class FieldsRenderer:
    """`render_fields(compiled, {**shared, "subscriber": subscriber_context(sub)})` for each of many subscribers,
    with the same result, but most of the work done once: a field that does not read the subscriber is rendered
    once; a field of text, such values and plain {{ subscriber.<field> }} is joined from its parts (a text value
    as it is, anything else as Django renders a value); only other fields ({% if %}, filters on the subscriber's
    fields ...) go through the template engine per subscriber."""

    def __init__(self, compiled: CompiledFields, shared: Mapping[str, Any]):
        self.compiled = compiled
        self.shared = dict(shared)
        self.context = Context(self.shared, autoescape=False)  # for values that are not text, and constant parts
        self.fields: list[tuple[str, str, Any]] = []  # (key, color, parts: a list of str | (field,), or None)
        for key, tpl, color in compiled:
            nodes = list(tpl.nodelist)
            if not any(_mentions_subscriber(n) for n in nodes):
                parts: Any = [tpl.render(self.context)]
            elif all(_subscriber_field(n) or not _mentions_subscriber(n) for n in nodes):
                parts = [(_subscriber_field(n),) if _subscriber_field(n) else n.render(self.context) for n in nodes]
            else:
                parts = None  # the engine, per subscriber
            self.fields.append((key, color, parts))
        self.needs_engine = any(parts is None for _key, _color, parts in self.fields)
        # The subscriber's fields the values read (all of them when the engine renders some field).
        self.subscriber_fields: tuple[str, ...] = (
            SUBSCRIBER_FIELDS
            if self.needs_engine
            else tuple(dict.fromkeys(p[0] for _k, _c, parts in self.fields for p in parts if not isinstance(p, str)))
        )

    def __call__(self, subscriber: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        ctx = None
        if self.needs_engine:
            ctx = Context({**self.shared, "subscriber": subscriber_context(subscriber)}, autoescape=False)
        data: dict[str, dict[str, str]] = {}
        for (key, color, parts), (_key, tpl, _color) in zip(self.fields, self.compiled, strict=True):
            if parts is None:
                value = tpl.render(ctx)
            else:
                value = "".join(p if isinstance(p, str) else self._value(subscriber.get(p[0], "")) for p in parts)
            data[key] = {"value": value, "color": color} if color else {"value": value}
        return data

    def _value(self, value: Any) -> str:
        return value if type(value) is str else render_value_in_context(value, self.context)


def cache_clear() -> None:
    with _cache_lock:
        _cache.clear()
