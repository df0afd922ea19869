"""What is received: every msg_list item type from items shaped like WeChat's own examples,
events read from inside their event object, and items of any other shape kept as Unknown*
with their raw item, never an error."""

from __future__ import annotations

import copy
import math
import types
import typing
from datetime import datetime, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wechat_kf.kf_messages import (
    BusinessCardMessage,
    EnterSessionEvent,
    FileMessage,
    ImageMessage,
    KfEvent,
    KfMessage,
    LinkMessage,
    LocationMessage,
    MenuMessage,
    MessageOrigin,
    MiniprogramMessage,
    MsgSendFailEvent,
    RecallEvent,
    ServicerStatusChangeEvent,
    SessionStatusChangeEvent,
    TextMessage,
    UnknownEvent,
    UnknownMessage,
    VideoMessage,
    VoiceMessage,
    parse_message,
    parse_messages,
)

KFID = "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q"
CUSTOMER = "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw"
MEDIA = "2iSLeVyqzk4eX0IB5kTi9Ljfa2rt9dwfq5WKRQ4Nvvgw"
SENT = datetime(2021, 3, 11, 16, 3, 5, tzinfo=timezone.utc)  # 1615478585
MENU_LIST = [
    {"type": "click", "click": {"id": "101", "content": "满意"}},
    {"type": "view", "view": {"url": "https://work.weixin.qq.com", "content": "自助查询"}},
    {
        "type": "miniprogram",
        "miniprogram": {"appid": "wx123123123123123", "pagepath": "pages/index", "content": "打开"},
    },
]


def message(msgtype: str, body: dict[str, Any], **top: Any) -> dict[str, Any]:
    """An item as sync_msg answers it (the shape of WeCom's documented example)."""
    return {
        "msgid": "from_msgid_4622416642169452483",
        "open_kfid": KFID,
        "external_userid": CUSTOMER,
        "send_time": 1615478585,
        "origin": 3,
        "msgtype": msgtype,
        msgtype: body,
        **top,
    }


def event(event_type: str, **fields: Any) -> dict[str, Any]:
    """An event item: no open_kfid or external_userid at the top, they are inside the event."""
    return {
        "msgid": "event_msgid_1",
        "send_time": 1615478585,
        "origin": 4,
        "msgtype": "event",
        "event": {"event_type": event_type, **fields},
    }


COMMON = {
    "msgid": "from_msgid_4622416642169452483",
    "open_kfid": KFID,
    "external_userid": CUSTOMER,
    "send_time": SENT,
    "origin": MessageOrigin.CUSTOMER,
    "servicer_userid": None,
}
EVENT_COMMON = {
    "msgid": "event_msgid_1",
    "msgtype": "event",
    "open_kfid": KFID,
    "send_time": SENT,
    "origin": MessageOrigin.EVENT,
    "servicer_userid": None,
}

# (item, the model it must become)
TYPED: list[tuple[dict[str, Any], KfMessage]] = []


def typed(item: dict[str, Any], cls: type[KfMessage], **fields: Any) -> None:
    common = EVENT_COMMON if item["msgtype"] == "event" else {**COMMON, "msgtype": item["msgtype"]}
    TYPED.append((item, cls(**{**common, **fields, "raw": item})))


typed(
    message("text", {"content": "hello world", "menu_id": "101"}),
    TextMessage,
    content="hello world",
    menu_id="101",
)
typed(message("text", {"content": "你好"}), TextMessage, content="你好")
typed(message("image", {"media_id": MEDIA}), ImageMessage, media_id=MEDIA)
typed(message("voice", {"media_id": MEDIA}), VoiceMessage, media_id=MEDIA)
typed(message("video", {"media_id": MEDIA}), VideoMessage, media_id=MEDIA)
typed(message("file", {"media_id": MEDIA}), FileMessage, media_id=MEDIA)
typed(
    message(
        "location",
        {
            "latitude": 23.106021881103501,
            "longitude": 113.320503234863,
            "name": "广州国际媒体港(广州市海珠区)",
            "address": "广东省广州市海珠区滨江东路",
        },
    ),
    LocationMessage,
    latitude=23.106021881103501,
    longitude=113.320503234863,
    name="广州国际媒体港(广州市海珠区)",
    address="广东省广州市海珠区滨江东路",
)
typed(
    message("link", {"title": "TITLE", "desc": "DESC", "url": "URL", "pic_url": "PIC_URL"}),
    LinkMessage,
    title="TITLE",
    desc="DESC",
    url="URL",
    pic_url="PIC_URL",
)
typed(message("business_card", {"userid": "USERID"}), BusinessCardMessage, userid="USERID")
typed(
    message(
        "miniprogram",
        {"title": "TITLE", "appid": "APPID", "pagepath": "PAGE_PATH", "thumb_media_id": "THUMB"},
    ),
    MiniprogramMessage,
    title="TITLE",
    appid="APPID",
    pagepath="PAGE_PATH",
    thumb_media_id="THUMB",
)
typed(
    message(
        "msgmenu",
        {"head_content": "您对本次服务是否满意呢? ", "list": MENU_LIST, "tail_content": "欢迎"},
        origin=5,
        servicer_userid="zhangsan",
    ),
    MenuMessage,
    origin=MessageOrigin.SERVICER,
    servicer_userid="zhangsan",
    head_content="您对本次服务是否满意呢? ",
    items=tuple(MENU_LIST),
    tail_content="欢迎",
)
typed(
    event(
        "enter_session",
        open_kfid=KFID,
        external_userid=CUSTOMER,
        scene="123",
        scene_param="abc",
        welcome_code="aaaaaa",
        wechat_channels={"nickname": "视频号", "scene": 1},
    ),
    EnterSessionEvent,
    event_type="enter_session",
    external_userid=CUSTOMER,
    scene="123",
    scene_param="abc",
    welcome_code="aaaaaa",
    wechat_channels={"nickname": "视频号", "scene": 1},
)
typed(
    event("enter_session", open_kfid=KFID, external_userid=CUSTOMER, scene=""),
    EnterSessionEvent,
    event_type="enter_session",
    external_userid=CUSTOMER,
    scene="",
)
typed(
    event(
        "msg_send_fail",
        open_kfid=KFID,
        external_userid=CUSTOMER,
        fail_msgid="FAIL_MSGID",
        fail_type=4,
    ),
    MsgSendFailEvent,
    event_type="msg_send_fail",
    external_userid=CUSTOMER,
    fail_msgid="FAIL_MSGID",
    fail_type=4,
)
typed(
    event("servicer_status_change", servicer_userid="zs", status=2, stop_type=1, open_kfid=KFID),
    ServicerStatusChangeEvent,
    event_type="servicer_status_change",
    external_userid=None,
    servicer_userid="zs",
    status=2,
    stop_type=1,
)
typed(
    event(
        "session_status_change",
        open_kfid=KFID,
        external_userid=CUSTOMER,
        change_type=2,
        old_servicer_userid="OLD",
        new_servicer_userid="NEW",
        msg_code="MSG_CODE",
    ),
    SessionStatusChangeEvent,
    event_type="session_status_change",
    external_userid=CUSTOMER,
    change_type=2,
    old_servicer_userid="OLD",
    new_servicer_userid="NEW",
    msg_code="MSG_CODE",
)
typed(
    event("session_status_change", open_kfid=KFID, external_userid=CUSTOMER, change_type=3),
    SessionStatusChangeEvent,
    event_type="session_status_change",
    external_userid=CUSTOMER,
    change_type=3,
)
typed(
    event("user_recall_msg", open_kfid=KFID, external_userid=CUSTOMER, recall_msgid="M1"),
    RecallEvent,
    event_type="user_recall_msg",
    external_userid=CUSTOMER,
    recall_msgid="M1",
)
typed(
    event(
        "servicer_recall_msg",
        open_kfid=KFID,
        external_userid=CUSTOMER,
        recall_msgid="M2",
        servicer_userid="lisi",
    ),
    RecallEvent,
    event_type="servicer_recall_msg",
    external_userid=CUSTOMER,
    servicer_userid="lisi",
    recall_msgid="M2",
)
TYPED_IDS = [f"{type(model).__name__}-{index}" for index, (_, model) in enumerate(TYPED)]


@pytest.mark.parametrize(("item", "expected"), TYPED, ids=TYPED_IDS)
def test_every_documented_type_becomes_its_model(item: dict[str, Any], expected: KfMessage) -> None:
    parsed = parse_message(copy.deepcopy(item))
    assert type(parsed) is type(expected)
    assert parsed == expected
    assert parsed.raw == item
    assert isinstance(parsed, KfMessage)
    assert isinstance(parsed, KfEvent) == (item["msgtype"] == "event")
    assert parsed.send_time is not None
    assert parsed.send_time.tzinfo is timezone.utc
    hash(parsed)


def test_event_ids_are_read_from_inside_the_event_object() -> None:
    item = event("enter_session", open_kfid="wk-inner", external_userid="wm-inner")
    item.update(open_kfid="wk-top", external_userid="wm-top")  # some examples show both
    parsed = parse_message(item)
    assert isinstance(parsed, EnterSessionEvent)
    assert (parsed.open_kfid, parsed.external_userid) == ("wk-inner", "wm-inner")


def test_event_ids_fall_back_to_the_top_level() -> None:
    item = event("msg_send_fail", fail_msgid="F", fail_type=6)
    item.update(open_kfid=KFID, external_userid=CUSTOMER)
    parsed = parse_message(item)
    assert isinstance(parsed, MsgSendFailEvent)
    assert (parsed.open_kfid, parsed.external_userid) == (KFID, CUSTOMER)


def test_the_common_fields_take_the_readings_wechat_documents_disagree_on() -> None:
    item = message("text", {"content": "x"}, msgid=4622416642169452483, send_time="1615478585")
    item["origin"] = "3"
    parsed = parse_message(item)
    assert isinstance(parsed, TextMessage)
    assert parsed.msgid == "4622416642169452483"
    assert parsed.send_time == SENT
    assert parsed.origin is MessageOrigin.CUSTOMER


def test_an_origin_wechat_adds_later_is_kept_as_an_int() -> None:
    parsed = parse_message(message("text", {"content": "x"}, origin=7))
    assert isinstance(parsed, TextMessage)
    assert parsed.origin == 7
    assert not isinstance(parsed.origin, MessageOrigin)


def test_numeric_strings_are_read_as_numbers() -> None:
    location = parse_message(message("location", {"latitude": "23.5", "longitude": "-113"}))
    assert isinstance(location, LocationMessage)
    assert (location.latitude, location.longitude) == (23.5, -113.0)
    assert (location.name, location.address) == (None, None)
    fail = parse_message(event("msg_send_fail", open_kfid=KFID, fail_msgid="F", fail_type="10"))
    assert isinstance(fail, MsgSendFailEvent)
    assert fail.fail_type == 10


@pytest.mark.parametrize(
    "msgtype",
    ["channels_shop_product", "channels_shop_order", "merged_msg", "channels", "note", "ca_link"],
)
def test_an_unknown_msgtype_is_an_unknown_message_with_its_common_fields(msgtype: str) -> None:
    item = message(msgtype, {"product_id": "P1", "title": "新品"})
    parsed = parse_message(item)
    assert type(parsed) is UnknownMessage
    assert parsed.raw == item
    assert parsed.reason == f"msgtype {msgtype!r} is not one wechat_kf models"
    assert (parsed.msgid, parsed.msgtype, parsed.open_kfid) == (item["msgid"], msgtype, KFID)
    assert (parsed.external_userid, parsed.send_time) == (CUSTOMER, SENT)
    assert parsed.origin is MessageOrigin.CUSTOMER


def test_an_unknown_event_type_is_an_unknown_event() -> None:
    item = event(
        "reject_customer_msg_switch_change",
        servicer_userid="zhangsan",
        open_kfid=KFID,
        external_userid=CUSTOMER,
        reject_switch=1,
    )
    parsed = parse_message(item)
    assert type(parsed) is UnknownEvent
    assert isinstance(parsed, KfEvent)
    assert parsed.event_type == "reject_customer_msg_switch_change"
    assert (parsed.open_kfid, parsed.external_userid, parsed.servicer_userid) == (
        KFID,
        CUSTOMER,
        "zhangsan",
    )
    assert parsed.raw == item
    assert "not one wechat_kf models" in parsed.reason


def mutated(item: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``item`` with the field at a dotted ``path`` set to ``value`` (``...`` removes it)."""
    result = copy.deepcopy(item)
    *parents, last = path.split(".")
    target = result
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return result


TEXT = message("text", {"content": "hi"})
ENTER = event("enter_session", open_kfid=KFID, external_userid=CUSTOMER, welcome_code="W")

# (item, dotted path, the value put there (... removes it), reason)
SURPRISES: list[tuple[dict[str, Any], str, Any, str]] = [
    (TEXT, "msgid", ..., "msgid is missing"),
    (TEXT, "msgid", "", "msgid is a str, not a non-empty str"),
    (TEXT, "msgid", True, "msgid is a bool"),
    (TEXT, "msgid", 1.5, "msgid is a float"),
    (TEXT, "msgtype", ..., "msgtype is missing"),
    (TEXT, "msgtype", ["text"], "msgtype is a list"),
    (TEXT, "open_kfid", ..., "open_kfid is missing"),
    (TEXT, "open_kfid", 12, "open_kfid is an int, not a str"),
    (TEXT, "external_userid", ..., "external_userid is missing"),
    (TEXT, "external_userid", {"id": 1}, "external_userid is a dict, not a str"),
    (TEXT, "servicer_userid", 5, "servicer_userid is an int, not a str"),
    (TEXT, "send_time", ..., "send_time is missing, not unix seconds"),
    (TEXT, "send_time", "yesterday", "send_time is a str, not unix seconds"),
    (TEXT, "send_time", 1615478585.5, "send_time is a float, not unix seconds"),
    (TEXT, "send_time", 10**30, "send_time is an int, not unix seconds"),
    (TEXT, "send_time", True, "send_time is a bool"),
    (TEXT, "origin", ..., "origin is missing, not an integer"),
    (TEXT, "origin", "customer", "origin is a str, not an integer"),
    (TEXT, "text", ..., "text is missing, not an object"),
    (TEXT, "text", "hi", "text is a str, not an object"),
    (TEXT, "text.content", 5, "text.content is an int, not a str"),
    (TEXT, "text.content", None, "text.content is null, not a str"),
    (TEXT, "text.menu_id", 101, "text.menu_id is an int, not a str"),
    (message("image", {"media_id": MEDIA}), "image.media_id", ..., "image.media_id is missing"),
    (message("voice", {"media_id": MEDIA}), "voice.media_id", [], "voice.media_id is a list"),
    (message("video", {"media_id": MEDIA}), "video", [], "video is a list, not an object"),
    (message("file", {"media_id": MEDIA}), "file.media_id", 7, "file.media_id is an int"),
    (
        message("location", {"latitude": 1.0, "longitude": 2.0}),
        "location.latitude",
        "north",
        "location.latitude is a str, not a finite number",
    ),
    (
        message("location", {"latitude": 1.0, "longitude": 2.0}),
        "location.longitude",
        "nan",
        "location.longitude is a str, not a finite number",
    ),
    (
        message("location", {"latitude": 1.0, "longitude": 2.0}),
        "location.longitude",
        float("inf"),
        "location.longitude is a float, not a finite number",
    ),
    (
        message("location", {"latitude": 1.0, "longitude": 2.0}),
        "location.latitude",
        True,
        "location.latitude is a bool",
    ),
    (
        message("location", {"latitude": 1.0, "longitude": 2.0}),
        "location.latitude",
        10**400,
        "location.latitude is an int, not a finite number",
    ),
    (
        message("location", {"latitude": 1.0, "longitude": 2.0, "name": "n"}),
        "location.name",
        3,
        "location.name is an int, not a str",
    ),
    (message("link", {"url": "U"}), "link.url", ..., "link.url is missing"),
    (message("link", {"url": "U"}), "link.title", 1, "link.title is an int"),
    (message("business_card", {"userid": "U"}), "business_card.userid", 1, "userid is an int"),
    (
        message("miniprogram", {"appid": "A", "pagepath": "P"}),
        "miniprogram.pagepath",
        ...,
        "miniprogram.pagepath is missing",
    ),
    (
        message("msgmenu", {"list": MENU_LIST}),
        "msgmenu.list",
        "click",
        "msgmenu.list is a str, not a list of objects",
    ),
    (
        message("msgmenu", {"list": MENU_LIST}),
        "msgmenu.list",
        [{"type": "click"}, "view"],
        "msgmenu.list is a list, not a list of objects",
    ),
    (message("msgmenu", {"list": MENU_LIST}), "msgmenu.list", ..., "msgmenu.list is missing"),
    (message("msgmenu", {"list": []}), "msgmenu.head_content", 0, "head_content is an int"),
    (ENTER, "event", ..., "event is missing, not an object"),
    (ENTER, "event", "enter_session", "event is a str, not an object"),
    (ENTER, "event.event_type", ..., "event.event_type is missing"),
    (ENTER, "event.event_type", 1, "event.event_type is an int"),
    (ENTER, "event.open_kfid", ..., "open_kfid is missing"),
    (ENTER, "event.external_userid", ..., "external_userid is missing"),
    (ENTER, "event.external_userid", 9, "external_userid is an int, not a str"),
    (ENTER, "event.welcome_code", 9, "event.welcome_code is an int"),
    (ENTER, "event.wechat_channels", "x", "event.wechat_channels is a str, not an object"),
    (ENTER, "send_time", "soon", "send_time is a str, not unix seconds"),
    (
        event("msg_send_fail", open_kfid=KFID, fail_msgid="F", fail_type=4),
        "event.fail_type",
        "four",
        "event.fail_type is a str, not an integer",
    ),
    (
        event("msg_send_fail", open_kfid=KFID, fail_msgid="F", fail_type=4),
        "event.fail_msgid",
        ...,
        "event.fail_msgid is missing",
    ),
    (
        event("servicer_status_change", open_kfid=KFID, servicer_userid="z", status=1),
        "event.servicer_userid",
        ...,
        "servicer_userid is missing",
    ),
    (
        event("servicer_status_change", open_kfid=KFID, servicer_userid="z", status=1),
        "event.status",
        True,
        "event.status is a bool, not an integer",
    ),
    (
        event("servicer_status_change", open_kfid=KFID, servicer_userid="z", status=1),
        "event.stop_type",
        [1],
        "event.stop_type is a list, not an integer",
    ),
    (
        event("session_status_change", open_kfid=KFID, change_type=1),
        "event.change_type",
        ...,
        "event.change_type is missing",
    ),
    (
        event("session_status_change", open_kfid=KFID, change_type=1),
        "event.msg_code",
        1,
        "event.msg_code is an int",
    ),
    (
        event("user_recall_msg", open_kfid=KFID, recall_msgid="M"),
        "event.recall_msgid",
        None,
        "event.recall_msgid is null, not a str",
    ),
]


@pytest.mark.parametrize(("item", "path", "value", "reason"), SURPRISES)
def test_a_surprising_field_makes_an_unknown_with_the_raw_item_and_why(
    item: dict[str, Any], path: str, value: Any, reason: str
) -> None:
    bad = mutated(item, path, value)
    parsed = parse_message(bad)
    expected = UnknownEvent if bad.get("msgtype") == "event" else UnknownMessage
    assert type(parsed) is expected
    assert parsed.raw == bad
    assert reason in parsed.reason  # type: ignore[attr-defined]
    assert not parsed.reason.startswith("could not be read")  # type: ignore[attr-defined]
    hash(parsed)


def test_an_unknown_keeps_whatever_common_fields_it_can_read() -> None:
    parsed = parse_message(mutated(TEXT, "send_time", "yesterday"))
    assert isinstance(parsed, UnknownMessage)
    assert (parsed.msgid, parsed.msgtype, parsed.open_kfid) == (TEXT["msgid"], "text", KFID)
    assert parsed.send_time is None
    empty = parse_message({})
    assert isinstance(empty, UnknownMessage)
    assert (empty.msgid, empty.msgtype, empty.open_kfid, empty.send_time, empty.origin) == (
        "",
        "",
        None,
        None,
        None,
    )
    assert empty.raw == {}


def test_an_event_without_an_event_object_is_an_unknown_event_without_a_type() -> None:
    parsed = parse_message({"msgid": "e", "msgtype": "event", "event": [1]})
    assert isinstance(parsed, UnknownEvent)
    assert parsed.event_type is None


def test_items_that_are_not_objects_are_unknown_messages_holding_the_value() -> None:
    items: list[Any] = [TEXT, None, "text", 3, ["a"], ENTER]
    parsed = parse_messages(items)
    assert [type(m) for m in parsed] == [
        TextMessage,
        UnknownMessage,
        UnknownMessage,
        UnknownMessage,
        UnknownMessage,
        EnterSessionEvent,
    ]
    assert [m.raw for m in parsed[1:5]] == [
        {"value": None},
        {"value": "text"},
        {"value": 3},
        {"value": ["a"]},
    ]
    assert parsed[4].reason == "the item is a list, not a JSON object"  # type: ignore[attr-defined]


def test_raw_is_a_copy_of_the_item_not_the_item_itself() -> None:
    item = copy.deepcopy(TEXT)
    parsed = parse_message(item)
    item["msgid"] = "changed"
    assert parsed.raw["msgid"] == TEXT["msgid"]


def test_messages_hash_and_compare_by_value_even_with_dict_fields() -> None:
    models = [parse_message(copy.deepcopy(item)) for item, _ in TYPED]
    again = [parse_message(copy.deepcopy(item)) for item, _ in TYPED]
    assert models == again
    assert [hash(m) for m in models] == [hash(m) for m in again]
    assert len(set(models)) == len({(type(m), repr(m)) for m in models})
    unknown = parse_message(message("note", {"content": "x"}))
    assert hash(unknown) == hash(parse_message(message("note", {"content": "x"})))


def test_reprs_leave_raw_out() -> None:
    parsed = parse_message(TEXT)
    assert "raw" not in repr(parsed)
    assert "content='hi'" in repr(parsed)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["text", "event", "1615478585", "3", "23.5", "enter_session", ""]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [
        "msgid",
        "msgtype",
        "open_kfid",
        "external_userid",
        "servicer_userid",
        "send_time",
        "origin",
        "event",
        "text",
        "image",
        "location",
        "msgmenu",
        "event_type",
        "content",
        "media_id",
        "latitude",
        "list",
        "welcome_code",
        "fail_type",
        "status",
        "recall_msgid",
    ]
)
ITEMS = st.dictionaries(KEYS | st.text(max_size=6), JSON, max_size=8)


def check(item: Any) -> KfMessage:
    parsed = parse_message(item)
    assert isinstance(parsed, KfMessage)
    assert parsed.raw == (item if isinstance(item, dict) else {"value": item})
    hash(parsed)
    if isinstance(parsed, (UnknownMessage, UnknownEvent)):
        # Every refusal is a named one: the last-resort net never had to catch anything.
        assert not parsed.reason.startswith("could not be read"), parsed.reason
    return parsed


@given(item=ITEMS)
@settings(max_examples=400, deadline=None)
def test_any_json_object_parses_to_a_kf_message_holding_it(item: dict[str, Any]) -> None:
    check(item)


@given(item=JSON)
@settings(max_examples=150, deadline=None)
def test_any_json_value_parses_to_a_kf_message(item: Any) -> None:
    check(item)


def paths(item: dict[str, Any]) -> list[str]:
    """Every field of an item and of the objects it holds, as dotted paths."""
    found = []
    for key, value in item.items():
        found.append(key)
        if isinstance(value, dict):
            found.extend(f"{key}.{inner}" for inner in value)
    return found


@given(data=st.data(), index=st.integers(min_value=0, max_value=len(TYPED) - 1))
@settings(max_examples=400, deadline=None)
def test_a_documented_item_with_any_one_field_changed_is_typed_or_unknown(
    data: st.DataObject, index: int
) -> None:
    item, expected = TYPED[index]
    path = data.draw(st.sampled_from(paths(item)))
    bad = mutated(item, path, data.draw(JSON | st.just(...)))
    parsed = check(bad)
    if not isinstance(parsed, (UnknownMessage, UnknownEvent)):
        # A typed result is never half-typed: every field holds what its annotation says.
        assert type(parsed) is type(expected) or isinstance(parsed, KfEvent)
        assert parsed.msgid
        assert_conforms(parsed)


def conforms(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the annotated type ``hint`` (the forms kf_messages uses)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if origin is tuple:
        return isinstance(value, tuple) and all(conforms(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if hint is type(None):
        return value is None
    if hint is float:
        return type(value) is float and math.isfinite(value)
    if hint in (int, str):
        return type(value) is hint or (hint is int and isinstance(value, MessageOrigin))
    return isinstance(value, hint)


def assert_conforms(model: KfMessage) -> None:
    hints = typing.get_type_hints(type(model))
    for field in attrs.fields(type(model)):
        value = getattr(model, field.name)
        assert conforms(value, hints[field.name]), (field.name, value, hints[field.name])
    if model.send_time is not None:
        assert model.send_time.tzinfo is timezone.utc


def test_every_typed_model_conforms_to_its_annotations() -> None:
    for item, _ in TYPED:
        assert_conforms(parse_message(item))
    assert not conforms(1, str)
    assert not conforms(True, int)
    assert not conforms(float("nan"), float)
    assert not conforms("x", int | None)
