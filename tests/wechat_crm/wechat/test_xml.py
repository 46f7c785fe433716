"""The callback's XML parser: WeChat's flat documents read the same as any XML parser reads them, whatever their
layout, and what is not well-formed is refused."""

import xml.etree.ElementTree as ET

import pytest

from wechat_crm.wechat import xml as wxml


def standard(document: bytes) -> dict:
    """The children of the root as the standard library's parser reads them (flat documents only)."""
    result: dict = {}
    for child in ET.fromstring(document):  # noqa: S314 - our own test documents
        value = (child.text or "").strip()
        previous = result.get(child.tag)
        result[child.tag] = value if previous is None else [*previous, value] if isinstance(previous, list) else [
            previous, value]  # fmt: skip
    return result


@pytest.mark.parametrize(
    "document",
    [
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><CreateTime>1700000000</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好 hello]]></Content><MsgId>1234567890</MsgId></xml>",
        "\n<xml>\n  <Content><![CDATA[  padded  ]]></Content>\n  <Empty></Empty>\n"
        "  <Blank><![CDATA[]]></Blank>\n</xml>\n",
        "<xml><Content><![CDATA[<b>&amp; ]]] ]>]]></Content></xml>",  # markup, an entity and brackets, as text
        "<xml><Content><![CDATA[a]]]]><![CDATA[>b]]></Content></xml>",  # "]]>" inside, split in two sections
        "<xml><Content><![CDATA[ends with ]]]></Content></xml>",
        "<xml><Content>line one\r\nline two</Content><More><![CDATA[x\ry]]></More></xml>",  # line endings rewritten
        "<xml><Content>plain &amp; entity &#20320;</Content></xml>",
        "<xml><Item>1</Item><Item><![CDATA[2]]></Item><Item>3</Item></xml>",  # repeats become a list
        "<xml><Tab>\tx\t</Tab><Emoji><![CDATA[😀]]></Emoji></xml>",
        "<xml><Content>a > b</Content></xml>",
        '<xml><Content attr="1">with an attribute</Content></xml>',
        "<xml><Empty/><Content>x</Content></xml>",
        "<xml><!-- a comment --><Content>x</Content></xml>",
        '<?xml version="1.0" encoding="utf-8"?><xml><Content><![CDATA[declared]]></Content></xml>',
        "\ufeff<xml><Content>after a byte order mark</Content></xml>",
        "<root><Content>another root</Content></root>",
    ],
)
def test_flat_documents_read_as_a_standard_parser_reads_them(document):
    data = document.encode("utf-8")

    assert wxml.parse(data) == standard(data)
    assert wxml.parse(document.lstrip("\ufeff")) == standard(data)


def test_nested_elements_become_dicts():
    document = (
        b"<xml><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult>1</ScanResult></ScanCodeInfo></xml>"
    )

    assert wxml.parse(document) == {"ScanCodeInfo": {"ScanType": "qrcode", "ScanResult": "1"}}


@pytest.mark.parametrize(
    "document",
    [
        b"<xml><Content>x]]>y</Content></xml>",  # "]]>" is not allowed in text
        b"<xml><Content>bad \x01 control</Content></xml>",
        b"<xml><Content><![CDATA[bad \x0b control]]></Content></xml>",
        b"<xml><Content>\xff\xfe not utf-8</Content></xml>",
        b"<xml><Content>x</Other></xml>",
        b"<xml><Content>x</Content>",
        b"<xml><Content>x</Content></xml><xml></xml>",
        b"<xml><Content>a & b</Content></xml>",
        b"<xml><Content><![CDATA[unclosed</Content></xml>",
    ],
)
def test_what_is_not_well_formed_is_refused(document):
    with pytest.raises(wxml.XMLError):
        wxml.parse(document)
