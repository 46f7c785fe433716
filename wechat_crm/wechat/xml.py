"""Safe XML for the callback: parse WeChat's flat `<xml>` documents, render passive replies.

Parsing goes through defusedxml with DTDs forbidden, so entity expansion (billion laughs) and external entities
(XXE) are refused before anything is expanded.
"""

from __future__ import annotations

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
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise XMLError(str(exc) or exc.__class__.__name__) from exc
    return _children(root, 1)


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
