"""Safe XML for the callback: parse WeChat's flat `<xml>` documents, render passive replies.

Parsing goes through defusedxml with DTDs forbidden, so entity expansion (billion laughs) and external entities
(XXE) are refused before anything is expanded. WeChat's own shape (a flat `<xml>` of elements each holding one CDATA
section or plain text, no attribute, entity, comment, DTD or carriage return) is read by a scan instead of a tree
(a sixth of the parser's CPU); anything else, malformed input included, goes through the parser, and the scan gives
what the parser gives for the documents it takes (tests/wechat_crm/wechat/test_xml.py).
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring


class XMLError(ValueError):
    """The body is not a well-formed, DTD-free XML document (or nests deeper than MAX_DEPTH)."""


# WeChat's documents nest three levels at most (<xml><ScanCodeInfo><ScanResult>); anything much deeper is an attack
# on the recursive walk below, refused as malformed (400) instead of exhausting the stack.
MAX_DEPTH = 16


def parse(data: bytes | str) -> dict[str, Any]:
    """The children of the root element as a dict: text for leaves, dicts for nested elements, lists for repeats."""
    flat = _parse_flat(data)
    if flat is not None:
        return flat
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise XMLError(str(exc) or exc.__class__.__name__) from exc
    return _children(root, 1)


_FLAT_START = re.compile(r"[ \t\n]*<xml>")
# One element: a name, then one CDATA section (which cannot hold "]]>") or plain text (no markup, no entity, no "]"
# so no "]]>"), then the matching end tag.
_FLAT_ELEMENT = re.compile(
    r"[ \t\n]*<([A-Za-z_][A-Za-z0-9_]{0,63})>"
    r"(?:<!\[CDATA\[([^\]]*(?:\](?!\]>)[^\]]*)*)\]\]>|([^<&\]]*))</\1>"
)
_FLAT_END = re.compile(r"[ \t\n]*</xml>[ \t\n]*")
# Characters XML forbids (the parser refuses them), and the carriage return, which it rewrites as a line feed.
_FLAT_REFUSED = re.compile("[\x00-\x08\x0b-\x1f\ufffe\uffff]")


def _parse_flat(data: bytes | str) -> dict[str, Any] | None:
    """parse() of a flat WeChat document without building a tree, or None when `data` is of another shape."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    start = _FLAT_START.match(data)
    if start is None or _FLAT_REFUSED.search(data) is not None:
        return None
    result: dict[str, Any] = {}
    position, match_element = start.end(), _FLAT_ELEMENT.match
    while (element := match_element(data, position)) is not None:
        name, cdata, text = element.groups()
        value = (text if cdata is None else cdata).strip()
        if name in result:
            previous = result[name]
            if isinstance(previous, list):
                previous.append(value)
            else:
                result[name] = [previous, value]
        else:
            result[name] = value
        position = element.end()
    return result if _FLAT_END.fullmatch(data, position) else None


def _children(element: Element, depth: int) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise XMLError(f"nested deeper than {MAX_DEPTH} levels")
    result: dict[str, Any] = {}
    for child in element:
        value: Any = _children(child, depth + 1) if len(child) else (child.text or "").strip()
        if child.tag in result:
            previous = result[child.tag]
            if isinstance(previous, list):
                previous.append(value)
            else:
                result[child.tag] = [previous, value]
        else:
            result[child.tag] = value
    return result


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render(fields: dict[str, Any]) -> str:
    """An `<xml>` document; strings as CDATA, ints as text, dicts as nested elements, lists as repeated elements."""
    return "<xml>" + _render_fields(fields) + "</xml>"


def _render_fields(fields: dict[str, Any]) -> str:
    parts = []
    for name, value in fields.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                inner = _render_fields(item)
            elif isinstance(item, bool):
                inner = str(int(item))
            elif isinstance(item, int | float):
                inner = str(item)
            else:
                inner = _cdata(str(item))
            parts.append(f"<{name}>{inner}</{name}>")
    return "".join(parts)
