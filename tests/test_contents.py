"""What is sent: each content's wire JSON on WeCom and on an Official Account, exactly, and every
bad value refused when the content is built."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest

from wechat_kf.contents import (
    Content,
    File,
    Image,
    Link,
    Location,
    Menu,
    MenuClick,
    MenuMiniprogram,
    MenuText,
    MenuView,
    Miniprogram,
    Text,
    Video,
    Voice,
)

MEDIA = "2iSLeVyqzk4eX0IB5kTi9Ljfa2rt9dwfq5WKRQ4Nvvgw"
FULL_MENU = Menu(
    [
        MenuClick("101", "满意"),
        MenuView("https://work.weixin.qq.com", "点击跳转到自助查询页面"),
        MenuMiniprogram("wx123123123123123", "pages/index?userid=zhangsan", "打开小程序"),
        MenuText("或者直接回复", no_newline=True),
        MenuText("谢谢"),
    ],
    head_content="您对本次服务是否满意呢? ",
    tail_content="欢迎再次光临",
)

# (content, WeCom's wire JSON, the Official Account's or None when it cannot be sent there)
WIRE: list[tuple[Content, dict[str, Any], dict[str, Any] | None]] = [
    (
        Text("您好"),
        {"msgtype": "text", "text": {"content": "您好"}},
        {"msgtype": "text", "text": {"content": "您好"}},
    ),
    (
        Image(MEDIA),
        {"msgtype": "image", "image": {"media_id": MEDIA}},
        {"msgtype": "image", "image": {"media_id": MEDIA}},
    ),
    (
        Voice(MEDIA),
        {"msgtype": "voice", "voice": {"media_id": MEDIA}},
        {"msgtype": "voice", "voice": {"media_id": MEDIA}},
    ),
    (
        Video(MEDIA),
        {"msgtype": "video", "video": {"media_id": MEDIA}},
        {"msgtype": "video", "video": {"media_id": MEDIA}},
    ),
    (
        Video(MEDIA, thumb_media_id="THUMB", title="标题", description="说明"),
        {"msgtype": "video", "video": {"media_id": MEDIA}},
        {
            "msgtype": "video",
            "video": {
                "media_id": MEDIA,
                "thumb_media_id": "THUMB",
                "title": "标题",
                "description": "说明",
            },
        },
    ),
    (File(MEDIA), {"msgtype": "file", "file": {"media_id": MEDIA}}, None),
    (
        Link("标题", "https://example.com/a?b=c", "THUMB", desc="描述"),
        {
            "msgtype": "link",
            "link": {
                "title": "标题",
                "desc": "描述",
                "url": "https://example.com/a?b=c",
                "thumb_media_id": "THUMB",
            },
        },
        None,
    ),
    (
        Link("标题", "http://example.com", "THUMB"),
        {
            "msgtype": "link",
            "link": {"title": "标题", "url": "http://example.com", "thumb_media_id": "THUMB"},
        },
        None,
    ),
    (
        Miniprogram("wxappid0000000001", "THUMB", "pages/index?x=1", title="卡片"),
        {
            "msgtype": "miniprogram",
            "miniprogram": {
                "appid": "wxappid0000000001",
                "title": "卡片",
                "thumb_media_id": "THUMB",
                "pagepath": "pages/index?x=1",
            },
        },
        {
            "msgtype": "miniprogrampage",
            "miniprogrampage": {
                "title": "卡片",
                "appid": "wxappid0000000001",
                "pagepath": "pages/index?x=1",
                "thumb_media_id": "THUMB",
            },
        },
    ),
    (
        Miniprogram("wxappid0000000001", "THUMB", "pages/index"),
        {
            "msgtype": "miniprogram",
            "miniprogram": {
                "appid": "wxappid0000000001",
                "thumb_media_id": "THUMB",
                "pagepath": "pages/index",
            },
        },
        {
            "msgtype": "miniprogrampage",
            "miniprogrampage": {
                "appid": "wxappid0000000001",
                "pagepath": "pages/index",
                "thumb_media_id": "THUMB",
            },
        },
    ),
    (
        Menu([MenuClick("101", "满意"), MenuClick("102", "不满意")], head_content="满意吗?"),
        {
            "msgtype": "msgmenu",
            "msgmenu": {
                "head_content": "满意吗?",
                "list": [
                    {"type": "click", "click": {"id": "101", "content": "满意"}},
                    {"type": "click", "click": {"id": "102", "content": "不满意"}},
                ],
            },
        },
        {
            "msgtype": "msgmenu",
            "msgmenu": {
                "head_content": "满意吗?",
                "list": [{"id": "101", "content": "满意"}, {"id": "102", "content": "不满意"}],
            },
        },
    ),
    (
        Menu((MenuClick("1", "a"),), tail_content="完"),
        {
            "msgtype": "msgmenu",
            "msgmenu": {
                "list": [{"type": "click", "click": {"id": "1", "content": "a"}}],
                "tail_content": "完",
            },
        },
        {
            "msgtype": "msgmenu",
            "msgmenu": {"list": [{"id": "1", "content": "a"}], "tail_content": "完"},
        },
    ),
    (
        FULL_MENU,
        {
            "msgtype": "msgmenu",
            "msgmenu": {
                "head_content": "您对本次服务是否满意呢? ",
                "list": [
                    {"type": "click", "click": {"id": "101", "content": "满意"}},
                    {
                        "type": "view",
                        "view": {
                            "url": "https://work.weixin.qq.com",
                            "content": "点击跳转到自助查询页面",
                        },
                    },
                    {
                        "type": "miniprogram",
                        "miniprogram": {
                            "appid": "wx123123123123123",
                            "pagepath": "pages/index?userid=zhangsan",
                            "content": "打开小程序",
                        },
                    },
                    {"type": "text", "text": {"content": "或者直接回复", "no_newline": 1}},
                    {"type": "text", "text": {"content": "谢谢"}},
                ],
                "tail_content": "欢迎再次光临",
            },
        },
        None,
    ),
    (
        Location(23.106021881103501, 113.320503234863, name="广州国际媒体港", address="滨江东路"),
        {
            "msgtype": "location",
            "location": {
                "name": "广州国际媒体港",
                "address": "滨江东路",
                "latitude": 23.106021881103501,
                "longitude": 113.320503234863,
            },
        },
        None,
    ),
    (
        Location(-90, 180),
        {"msgtype": "location", "location": {"latitude": -90.0, "longitude": 180.0}},
        None,
    ),
]
IDS = [f"{type(content).__name__}-{index}" for index, (content, _, _) in enumerate(WIRE)]


@pytest.mark.parametrize(("content", "wecom", "official"), WIRE, ids=IDS)
def test_wecom_wire_json_is_exactly_the_documented_object(
    content: Content, wecom: dict[str, Any], official: dict[str, Any] | None
) -> None:
    assert content.wecom_json() == wecom
    # Plain JSON, no nulls: what the resource posts as it is.
    assert json.loads(json.dumps(wecom)) == wecom
    assert "null" not in json.dumps(content.wecom_json())


@pytest.mark.parametrize(("content", "wecom", "official"), WIRE, ids=IDS)
def test_official_account_wire_json_uses_its_own_names(
    content: Content, wecom: dict[str, Any], official: dict[str, Any] | None
) -> None:
    if official is None:
        with pytest.raises(TypeError, match="cannot be sent to an Official Account"):
            content.official_account_json()
    else:
        assert content.official_account_json() == official
        assert "null" not in json.dumps(official)


def test_link_is_msgtype_link_never_news() -> None:
    wire = Link("t", "https://example.com", "THUMB").wecom_json()
    assert wire["msgtype"] == "link"
    assert set(wire) == {"msgtype", "link"}


def test_location_is_msgtype_location_never_inside_a_menu() -> None:
    wire = Location(1.5, 2.5).wecom_json()
    assert wire["msgtype"] == "location"
    assert set(wire) == {"msgtype", "location"}


@pytest.mark.parametrize(
    "content",
    [File(MEDIA), Link("t", "https://example.com", "THUMB"), Location(0, 0)],
    ids=["File", "Link", "Location"],
)
def test_contents_an_official_account_cannot_send_are_a_type_error(content: Content) -> None:
    with pytest.raises(TypeError, match=f"^{type(content).__name__} cannot be sent"):
        content.official_account_json()


@pytest.mark.parametrize(
    "item",
    [
        MenuView("https://example.com", "view"),
        MenuMiniprogram("wxappid", "pages/index", "open"),
        MenuText("text"),
    ],
)
def test_an_official_account_menu_takes_click_items_only(item: Any) -> None:
    menu = Menu([MenuClick("1", "ok"), item])
    assert menu.wecom_json()["msgtype"] == "msgmenu"
    with pytest.raises(TypeError, match=f"{type(item).__name__} item cannot be sent"):
        menu.official_account_json()


def test_contents_are_frozen_hashable_and_compare_by_value() -> None:
    assert Text("a") == Text("a")
    assert hash(Menu([MenuClick("1", "a")])) == hash(Menu([MenuClick("1", "a")]))
    assert FULL_MENU.items[0] == MenuClick("101", "满意")
    assert isinstance(FULL_MENU.items, tuple)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Text("a").content = "b"  # type: ignore[misc]


def test_text_takes_exactly_2048_utf8_bytes() -> None:
    assert Text("中" * 682 + "ab").content  # 2,048 bytes
    with pytest.raises(ValueError, match="at most 2048 UTF-8 bytes, got 2049"):
        Text("中" * 683)


def test_location_stores_floats() -> None:
    location = Location(1, -2)
    assert isinstance(location.latitude, float)
    assert isinstance(location.longitude, float)


TOO_LONG_URL = "https://example.com/" + "a" * 2030

# (build, exception, message pattern)
REFUSED: list[tuple[Any, type[Exception], str]] = [
    (lambda: Text(""), ValueError, r"Text\.content must not be empty"),
    (lambda: Text(5), TypeError, r"Text\.content must be a str, not int"),
    (lambda: Text(None), TypeError, r"Text\.content must be a str, not NoneType"),
    (lambda: Text("\ud800"), ValueError, r"Text\.content does not encode as UTF-8"),
    (lambda: Image(""), ValueError, r"Image\.media_id must not be empty"),
    (lambda: Image("a b"), ValueError, r"Image\.media_id must contain no whitespace"),
    (lambda: Voice("id\n"), ValueError, r"Voice\.media_id must contain no whitespace"),
    (lambda: Video(b"id"), TypeError, r"Video\.media_id must be a str, not bytes"),
    (lambda: Video("id", thumb_media_id=""), ValueError, r"Video\.thumb_media_id must not be"),
    (lambda: Video("id", title=3), TypeError, r"Video\.title must be a str"),
    (lambda: File(" "), ValueError, r"File\.media_id must contain no whitespace"),
    (lambda: Link("", "https://e.com", "T"), ValueError, r"Link\.title must not be empty"),
    (lambda: Link("t", "ftp://e.com", "T"), ValueError, r"Link\.url must be an absolute http"),
    (lambda: Link("t", "e.com/x", "T"), ValueError, r"Link\.url must be an absolute http"),
    (lambda: Link("t", "https://", "T"), ValueError, r"Link\.url must be an absolute http"),
    (lambda: Link("t", "https://e.com/a b", "T"), ValueError, r"Link\.url must contain no white"),
    (lambda: Link("t", "http://[::1", "T"), ValueError, r"Link\.url is not a valid URL"),
    (lambda: Link("t", TOO_LONG_URL, "T"), ValueError, r"Link\.url must be 1 to 2048 UTF-8"),
    (lambda: Link("t", "https://e.com", ""), ValueError, r"Link\.thumb_media_id must not be"),
    (lambda: Link("t", "https://e.com", "T", desc=1), TypeError, r"Link\.desc must be a str"),
    (lambda: Miniprogram("wx id", "T", "p"), ValueError, r"Miniprogram\.appid must contain no"),
    (lambda: Miniprogram("w" * 33, "T", "p"), ValueError, r"Miniprogram\.appid must be at most 32"),
    (lambda: Miniprogram("wx", "T", ""), ValueError, r"Miniprogram\.pagepath must not be empty"),
    (lambda: Miniprogram("wx", "T", "p" * 1025), ValueError, r"Miniprogram\.pagepath must be at"),
    (lambda: Miniprogram("wx", "T", "p", title=""), ValueError, r"Miniprogram\.title must not be"),
    (lambda: Menu([]), ValueError, r"Menu\.items must hold 1 to 10 items, got 0"),
    (lambda: Menu([MenuClick(str(i), "x") for i in range(11)]), ValueError, r"got 11"),
    (lambda: Menu(MenuClick("1", "a")), TypeError, r"Menu\.items must be a list of menu items"),
    (lambda: Menu("items"), TypeError, r"Menu\.items must be a list of menu items, not str"),
    (lambda: Menu({"1": "a"}), TypeError, r"Menu\.items must be a list of menu items, not dict"),
    (lambda: Menu(None), TypeError, r"Menu\.items must be a list of menu items, not NoneType"),
    (lambda: Menu([Text("a")]), TypeError, r"every Menu item must be a MenuClick.*not Text"),
    (lambda: Menu([{"id": "1"}]), TypeError, r"every Menu item must be .* not dict"),
    (
        lambda: Menu([MenuClick("1", "a")], head_content="h" * 1025),
        ValueError,
        r"Menu\.head_content must be at most 1024 UTF-8 bytes",
    ),
    (lambda: Menu([MenuClick("1", "a")], tail_content=0), TypeError, r"Menu\.tail_content must"),
    (lambda: MenuClick("", "a"), ValueError, r"MenuClick\.id must not be empty"),
    (lambda: MenuClick(101, "a"), TypeError, r"MenuClick\.id must be a str, not int"),
    (lambda: MenuClick("i" * 129, "a"), ValueError, r"MenuClick\.id must be at most 128"),
    (lambda: MenuClick("1", "c" * 129), ValueError, r"MenuClick\.content must be at most 128"),
    (lambda: MenuClick("1", ""), ValueError, r"MenuClick\.content must not be empty"),
    (lambda: MenuView("javascript:x", "a"), ValueError, r"MenuView\.url must be an absolute"),
    (lambda: MenuView("https://e.com", ""), ValueError, r"MenuView\.content must not be empty"),
    (lambda: MenuMiniprogram("", "p", "c"), ValueError, r"MenuMiniprogram\.appid must not be"),
    (lambda: MenuMiniprogram("wx", None, "c"), TypeError, r"MenuMiniprogram\.pagepath must be"),
    (lambda: MenuText("t", no_newline=1), TypeError, r"MenuText\.no_newline must be a bool"),
    (lambda: MenuText("t" * 1025), ValueError, r"MenuText\.content must be at most 1024"),
    (lambda: Location(90.1, 0), ValueError, r"Location\.latitude must be between -90 and 90"),
    (lambda: Location(-91, 0), ValueError, r"Location\.latitude must be between"),
    (lambda: Location(0, 180.5), ValueError, r"Location\.longitude must be between -180 and 180"),
    (lambda: Location(0, -181), ValueError, r"Location\.longitude must be between"),
    (lambda: Location(float("nan"), 0), ValueError, r"Location\.latitude must be between"),
    (lambda: Location(0, float("inf")), ValueError, r"Location\.longitude must be between"),
    (lambda: Location(10**400, 0), ValueError, r"Location\.latitude must be between"),
    (lambda: Location(True, 0), TypeError, r"Location\.latitude must be a float, not bool"),
    (lambda: Location("23.1", 0), TypeError, r"Location\.latitude must be a float, not str"),
    (lambda: Location(0, None), TypeError, r"Location\.longitude must be a float, not NoneType"),
    (lambda: Location(0, 0, name=""), ValueError, r"Location\.name must not be empty"),
    (lambda: Location(0, 0, address=1), TypeError, r"Location\.address must be a str"),
]


@pytest.mark.parametrize(("build", "error", "message"), REFUSED)
def test_bad_values_are_refused_when_built(
    build: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        build()


def test_optional_fields_accept_none_and_click_ids_up_to_128_bytes() -> None:
    assert MenuClick("i" * 128, "c" * 128).id == "i" * 128
    assert Video(MEDIA, thumb_media_id=None).official_account_json() == {
        "msgtype": "video",
        "video": {"media_id": MEDIA},
    }
    assert Menu([MenuClick("1", "a")] * 10).wecom_json()["msgmenu"]["list"][9]["click"]["id"] == "1"
    assert Menu(item for item in [MenuClick("1", "a")]).items == (MenuClick("1", "a"),)
