"""CallbackCrypto and the callback models: the official vectors, every check of a push (signature,
timestamp, padding, length, receive id, XML), hostile XML, and no secret in any refusal."""

from __future__ import annotations

import base64
import hashlib
import os
import pickle
import time
import timeit
import traceback
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wechat_kf
from wechat_kf import CallbackError, WeChatError
from wechat_kf.callbacks import (
    MAX_BODY_BYTES,
    AuthChange,
    CallbackCrypto,
    ComponentVerifyTicket,
    KfMsgOrEvent,
    OfficialAccountMessage,
    SealedCallback,
    SuiteTicket,
    UnknownCallback,
)

# The sample every WXBizMsgCrypt ships (WeCom's PHP, C#, Python and Java samples, easywechat's
# tests): the URL check and the text message "hello" from "mycreate".
TOKEN = "QDG6eK"
KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
CORPID = "wx5823bf96d3bd56c7"
URL_CHECK = {
    "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
    "timestamp": "1409659589",
    "nonce": "263014780",
    "echostr": (
        "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
    ),
}
MESSAGE_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj9"
    "11L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06"
    "DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3I"
    "QH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27"
    "Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R0"
    "7+qN+E7Q=="
)
MESSAGE_BODY = (
    f"<xml><ToUserName><![CDATA[{CORPID}]]></ToUserName><Encrypt><![CDATA[{MESSAGE_ENCRYPT}]]>"
    "</Encrypt><AgentID><![CDATA[218]]></AgentID></xml>"
)
MESSAGE_QUERY = {
    "msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6",
    "timestamp": "1409659813",
    "nonce": "1372623149",
}
#: What a test seals: if it shows up in a refusal, a plaintext leaked.
MARKER = "PLAINTEXT-MARKER-7c1e"
KF_EVENT = (
    "<xml><ToUserName><![CDATA[ww12345678910]]></ToUserName><CreateTime>1348831860</CreateTime>"
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event>"
    f"<Token><![CDATA[ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR-{MARKER}]]></Token>"
    "<OpenKfId><![CDATA[wkxxxxxxx]]></OpenKfId></xml>"
)
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol;" if i == 1 else f"&lol{i - 1};") * 10}">' for i in range(1, 10)
    )
    + "]><xml><Encrypt>&lol9;</Encrypt></xml>"
)


def crypto(receive_id: str = CORPID, *, max_age: float | None = 300) -> CallbackCrypto:
    return CallbackCrypto(TOKEN, KEY, receive_id, max_age=max_age)


def sign(*parts: str) -> str:
    """WeChat's signature, computed here independently of the SDK."""
    return hashlib.sha1("".join(sorted([TOKEN, *parts])).encode()).hexdigest()


def encrypt_of(body: str) -> str:
    return ElementTree.fromstring(body).findtext("Encrypt") or ""  # our own output: trusted


def seal_raw(plain: bytes) -> str:
    """``plain`` (already padded) encrypted as WeChat would, for hand-made malformed plaintexts."""
    key = base64.b64decode(KEY + "=")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def pkcs7(data: bytes) -> bytes:
    pad = 32 - len(data) % 32
    return data + bytes([pad]) * pad


def framed(message: bytes, receive_id: bytes = CORPID.encode(), length: int | None = None) -> bytes:
    size = len(message) if length is None else length
    return os.urandom(16) + size.to_bytes(4, "big") + message + receive_id


def post(encrypt: str, timestamp: str | None = None) -> tuple[str, dict[str, str]]:
    """The body and query WeChat would send for ``encrypt``, signed correctly."""
    timestamp = timestamp or str(int(time.time()))
    query = {"msg_signature": sign(timestamp, "n0nce", encrypt), "timestamp": timestamp}
    return f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>", {**query, "nonce": "n0nce"}


def raised(call: Callable[..., Any], *args: Any, **kwargs: Any) -> CallbackError:
    """What ``call`` raised, caught here so that its traceback holds the SDK's frames and this
    one, whose locals are only what WeChat sent."""
    try:
        call(*args, **kwargs)
    except CallbackError as error:
        return error
    raise AssertionError("the callback was accepted")


def refused(encrypt: str, receiver: CallbackCrypto | None = None) -> CallbackError:
    body, query = post(encrypt)
    return raised((receiver or crypto()).decrypt, body, **query)


def tracker_record(error: BaseException) -> str:
    """What an error tracker records: str, repr, args, the chain and the locals of the SDK's
    frames (this file's own frames hold what the tests made, secrets included)."""
    rendered = traceback.TracebackException(
        type(error), error, error.__traceback__, capture_locals=True
    )
    rendered.stack = traceback.StackSummary.from_list(
        [frame for frame in rendered.stack if frame.filename != __file__]
    )
    assert any("wechat_kf" in frame.filename for frame in rendered.stack)
    return "".join(rendered.format()) + repr(error) + repr(error.args)


def assert_nothing_secret(error: CallbackError, *plaintexts: str) -> None:
    record = tracker_record(error)
    for secret in (TOKEN, KEY, MARKER, *plaintexts):
        assert secret not in record
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def test_the_official_wecom_url_check_vector_is_verified_and_decrypted() -> None:
    assert sign("1409659589", "263014780", URL_CHECK["echostr"]) == URL_CHECK["msg_signature"]
    assert crypto(max_age=None).verify_url(**URL_CHECK) == "1616140317555161061"


def test_the_official_wecom_message_vector_decrypts_to_its_text_message() -> None:
    message = crypto(max_age=None).decrypt(MESSAGE_BODY.encode(), **MESSAGE_QUERY)
    assert message == OfficialAccountMessage(
        msg_type="text",
        event=None,
        from_user="mycreate",
        to_user=CORPID,
        create_time=datetime(2014, 9, 2, 12, 10, 13, tzinfo=timezone.utc),
        fields={
            "ToUserName": CORPID,
            "FromUserName": "mycreate",
            "CreateTime": "1409659813",
            "MsgType": "text",
            "Content": "hello",
            "MsgId": "4561255354251345929",
            "AgentID": "218",
        },
    )


def test_the_official_vectors_are_refused_as_stale_when_max_age_is_on() -> None:
    assert raised(crypto().verify_url, **URL_CHECK).reason == "timestamp"
    assert raised(crypto().decrypt, MESSAGE_BODY, **MESSAGE_QUERY).reason == "timestamp"


def test_the_official_account_url_check_returns_echostr_unchanged_only_when_signed() -> None:
    now = str(int(time.time()))
    signature = sign(now, "123")
    assert crypto().verify_official_account_url(signature, now, "123", "e c h o") == "e c h o"
    assert raised(crypto().verify_official_account_url, signature, now, "124", "x").reason == (
        "signature"
    )
    old = str(int(time.time()) - 301)
    stale = raised(crypto().verify_official_account_url, sign(old, "1"), old, "1", "x")
    assert stale.reason == "timestamp"


def test_a_tampered_url_check_signature_is_refused() -> None:
    tampered = {**URL_CHECK, "msg_signature": "0" * 40}
    assert raised(crypto(max_age=None).verify_url, **tampered).reason == "signature"


def test_encrypt_produces_the_body_wechat_posts_and_decrypt_reads_it_back() -> None:
    receiver = crypto()
    body = receiver.encrypt(KF_EVENT, nonce="abc123")
    root = ElementTree.fromstring(body)  # our own output: trusted here
    assert [child.tag for child in root] == ["Encrypt", "MsgSignature", "TimeStamp", "Nonce"]
    fields = {child.tag: child.text or "" for child in root}
    assert fields["Nonce"] == "abc123"
    assert abs(int(fields["TimeStamp"]) - time.time()) < 5
    event = receiver.decrypt(
        body,
        msg_signature=fields["MsgSignature"],
        timestamp=fields["TimeStamp"],
        nonce=fields["Nonce"],
    )
    assert isinstance(event, KfMsgOrEvent)
    sealed = receiver.seal(KF_EVENT, timestamp=fields["TimeStamp"], nonce="abc123")
    assert isinstance(sealed, SealedCallback)
    assert sealed.msg_signature == sign(sealed.timestamp, sealed.nonce, encrypt_of(sealed.body))


def test_seal_refuses_a_nonce_or_timestamp_that_could_break_the_envelope() -> None:
    with pytest.raises(ValueError):
        crypto().seal("<xml/>", nonce="]]><x>")
    with pytest.raises(ValueError):
        crypto().seal("<xml/>", timestamp="12a")
    with pytest.raises(TypeError):
        crypto().seal(b"<xml/>")  # type: ignore[arg-type]


_XML_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")).filter(
    lambda c: c not in "\ufffe\uffff"
) | st.sampled_from("\t\n")


@given(
    text=st.text(_XML_CHARS, max_size=300),
    tag=st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True),  # no element a model reads
    receive_id=st.sampled_from([CORPID, "", "企业微信-suite"]),
)
@settings(max_examples=150, deadline=None)
def test_any_utf8_xml_round_trips_through_encrypt_and_decrypt(
    text: str, tag: str, receive_id: str
) -> None:
    receiver = crypto(receive_id)
    sealed = receiver.seal(f"<xml><{tag}>{escape(text)}</{tag}></xml>")
    back = receiver.decrypt(
        sealed.body.encode(),
        msg_signature=sealed.msg_signature,
        timestamp=sealed.timestamp,
        nonce=sealed.nonce,
    )
    assert back == UnknownCallback({tag: text})


def flip(text: str, bit: int) -> str:
    data = bytearray(text.encode())
    data[bit // 8 % len(data)] ^= 1 << (bit % 8)
    return data.decode("utf-8", "replace")


@given(bit=st.integers(min_value=0, max_value=10_000))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_flipped_bit_in_the_signature_or_encrypt_is_a_callback_error(bit: int) -> None:
    receiver = crypto()
    sealed = receiver.seal(KF_EVENT)
    query = {"timestamp": sealed.timestamp, "nonce": sealed.nonce}
    bad_signature = flip(sealed.msg_signature, bit)
    signature_error = raised(receiver.decrypt, sealed.body, msg_signature=bad_signature, **query)
    assert signature_error.reason == "signature"
    encrypt = encrypt_of(sealed.body)
    bad_body = f"<xml><Encrypt><![CDATA[{flip(encrypt, bit)}]]></Encrypt></xml>"
    error = raised(receiver.decrypt, bad_body, msg_signature=sealed.msg_signature, **query)
    assert error.reason in {"signature", "xml"}


@given(bit=st.integers(min_value=0, max_value=32 * 8 - 1))
@settings(max_examples=200, deadline=None)
def test_any_flipped_bit_in_the_padding_is_refused_even_when_correctly_signed(bit: int) -> None:
    # 38 bytes of header and corpid plus 26 of message: exactly 64, so the padding is a whole
    # 32-byte block and every bit of the last 32 ciphertext bytes reaches it.
    message = b"<xml><A>" + b"x" * 8 + b"</A></xml>"
    assert len(framed(message)) % 32 == 0
    sealed = bytearray(base64.b64decode(seal_raw(pkcs7(framed(message)))))
    sealed[len(sealed) - 32 + bit // 8] ^= 1 << (bit % 8)
    error = refused(base64.b64encode(sealed).decode())
    assert error.reason in {"decrypt", "receive_id"}


def test_the_untampered_hand_made_seal_is_accepted() -> None:
    # The control for the tests below: seal_raw and framed make what the SDK accepts.
    body, query = post(seal_raw(pkcs7(framed(b"<xml><A>1</A></xml>"))))
    assert crypto().decrypt(body, **query) == UnknownCallback({"A": "1"})


def test_a_receive_id_that_only_starts_like_ours_is_refused() -> None:
    for theirs in (CORPID + "0", CORPID[:-1], CORPID.upper(), ""):
        encrypt = seal_raw(pkcs7(framed(b"<xml/>", theirs.encode())))
        assert refused(encrypt).reason == "receive_id"


def test_an_empty_receive_id_is_valid_and_exact() -> None:
    personal = crypto("")
    sealed = personal.seal(KF_EVENT)
    event = personal.decrypt(
        sealed.body,
        msg_signature=sealed.msg_signature,
        timestamp=sealed.timestamp,
        nonce=sealed.nonce,
    )
    assert isinstance(event, KfMsgOrEvent)
    assert refused(seal_raw(pkcs7(framed(b"<xml/>"))), personal).reason == "receive_id"


@pytest.mark.parametrize(
    "tail",
    [b"\x00", bytes([33]) * 33, b"\x05" * 3 + b"\x04", b"\x20" * 30 + b"\x1f\x20"],
    ids=["pad 0", "pad 33", "unequal short pad", "unequal full pad"],
)
def test_bad_padding_is_refused(tail: bytes) -> None:
    plain = framed(b"<xml/>")
    plain += b"z" * (-(len(plain) + len(tail)) % 32) + tail
    assert len(plain) % 32 == 0
    assert refused(seal_raw(plain)).reason == "decrypt"


@pytest.mark.parametrize("length", [len(b"<xml/>") + len(CORPID) + 1, 2**32 - 1])
def test_a_length_past_the_end_is_refused(length: int) -> None:
    plain = framed(b"<xml/>", length=length)
    assert refused(seal_raw(pkcs7(plain))).reason == "decrypt"


def test_a_plaintext_too_short_for_its_length_field_is_refused() -> None:
    assert refused(seal_raw(os.urandom(16) + b"\x01\x02" + bytes([14]) * 14)).reason == "decrypt"


@pytest.mark.parametrize(
    "encrypt",
    ["!!!!", "QUJD", "QUJDRA", base64.b64encode(b"x" * 16).decode(), "", "Ｑｕｊｄ" * 8],
    ids=["not base64", "3 bytes", "unpadded", "one AES block", "empty", "full-width"],
)
def test_what_is_not_base64_of_whole_blocks_is_refused(encrypt: str) -> None:
    error = refused(encrypt)
    assert error.reason in ({"xml"} if encrypt == "" else {"decrypt"})


def test_a_message_that_is_not_utf8_is_refused() -> None:
    assert refused(seal_raw(pkcs7(framed(b"<xml>\xff\xfe</xml>")))).reason == "decrypt"


@pytest.mark.parametrize("offset", [-301, 301, -10_000_000, 10_000_000])
def test_stale_and_future_timestamps_are_refused(offset: int) -> None:
    receiver = crypto()
    sealed = receiver.seal(KF_EVENT, timestamp=str(int(time.time()) + offset))
    error = raised(
        receiver.decrypt,
        sealed.body,
        msg_signature=sealed.msg_signature,
        timestamp=sealed.timestamp,
        nonce=sealed.nonce,
    )
    assert error.reason == "timestamp"


@pytest.mark.parametrize("timestamp", ["-5", "1e9", "99999999999999999999", " 1"])
def test_a_signed_timestamp_that_is_no_time_is_refused(timestamp: str) -> None:
    body, query = post(seal_raw(pkcs7(framed(b"<xml/>"))), timestamp=timestamp)
    assert raised(crypto().decrypt, body, **query).reason == "timestamp"
    assert isinstance(crypto(max_age=None).decrypt(body, **query), UnknownCallback)


def test_a_timestamp_within_max_age_either_way_is_accepted() -> None:
    receiver = crypto()
    for offset in (-290, 290):
        sealed = receiver.seal(KF_EVENT, timestamp=str(int(time.time()) + offset))
        assert isinstance(
            receiver.decrypt(
                sealed.body,
                msg_signature=sealed.msg_signature,
                timestamp=sealed.timestamp,
                nonce=sealed.nonce,
            ),
            KfMsgOrEvent,
        )


def test_missing_query_parameters_are_a_signature_refusal() -> None:
    sealed = crypto().seal(KF_EVENT)
    for missing in ("msg_signature", "timestamp", "nonce"):
        query: dict[str, Any] = {
            "msg_signature": sealed.msg_signature,
            "timestamp": sealed.timestamp,
            "nonce": sealed.nonce,
            missing: None,
        }
        assert raised(crypto().decrypt, sealed.body, **query).reason == "signature"


def test_a_missing_echostr_is_a_signature_refusal_not_the_official_account_scheme() -> None:
    now = str(int(time.time()))
    oa_signature = sign(now, "n")  # what a 3-part signature would be: must not pass for WeCom
    for verify in (crypto().verify_url, crypto().verify_official_account_url):
        assert raised(verify, oa_signature, now, "n", None).reason == "signature"


def test_a_body_with_a_lone_surrogate_is_an_xml_refusal() -> None:
    body = "<xml><Encrypt>\ud800</Encrypt></xml>"
    assert raised(crypto().decrypt, body, msg_signature="x", timestamp="1", nonce="n").reason == (
        "xml"
    )


def test_a_body_of_another_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        crypto().decrypt(123, msg_signature="a", timestamp="1", nonce="n")  # type: ignore[arg-type]


def test_a_billion_laughs_body_is_refused_fast_and_small() -> None:
    tracemalloc.start()
    started = time.perf_counter()
    error = raised(crypto().decrypt, LAUGHS, msg_signature="x", timestamp="1", nonce="n")
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert error.reason == "xml"
    assert elapsed < 0.5
    assert peak < 4 * 1024 * 1024


def test_a_billion_laughs_inside_the_encryption_is_refused_fast_and_small() -> None:
    receiver = crypto()
    sealed = receiver.seal(LAUGHS.replace("Encrypt", "Content"))
    tracemalloc.start()
    started = time.perf_counter()
    error = raised(
        receiver.decrypt,
        sealed.body,
        msg_signature=sealed.msg_signature,
        timestamp=sealed.timestamp,
        nonce=sealed.nonce,
    )
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert error.reason == "xml"
    assert elapsed < 0.5
    assert peak < 4 * 1024 * 1024


@pytest.mark.parametrize(
    "inner",
    [
        '<!DOCTYPE x SYSTEM "http://127.0.0.1:1/dtd"><xml/>',
        '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><A>&e;</A></xml>',
        "<xml><A>unclosed</xml>",
        "not xml at all",
    ],
    ids=["external DTD", "external entity", "malformed", "text"],
)
def test_hostile_or_malformed_decrypted_xml_is_an_xml_refusal(inner: str) -> None:
    receiver = crypto()
    sealed = receiver.seal(inner)
    error = raised(
        receiver.decrypt,
        sealed.body,
        msg_signature=sealed.msg_signature,
        timestamp=sealed.timestamp,
        nonce=sealed.nonce,
    )
    assert error.reason == "xml"


def test_a_body_over_the_cap_is_refused_before_parsing() -> None:
    assert MAX_BODY_BYTES == 1024 * 1024
    body = b"<xml><Encrypt>" + b"A" * MAX_BODY_BYTES + b"</Encrypt></xml>"
    started = time.perf_counter()
    error = raised(crypto().decrypt, body, msg_signature="x", timestamp="1", nonce="n")
    assert error.reason == "xml"
    assert "1048576" in str(error)
    assert time.perf_counter() - started < 0.5


def test_a_body_without_encrypt_is_an_xml_refusal() -> None:
    error = raised(
        crypto().decrypt, "<xml><A>1</A></xml>", msg_signature="x", timestamp="1", nonce="n"
    )
    assert error.reason == "xml"


def test_a_deeply_nested_body_is_parsed_without_recursion() -> None:
    body = "<a>" * 100_000 + "</a>" * 100_000
    error = raised(crypto().decrypt, body, msg_signature="x", timestamp="1", nonce="n")
    assert error.reason == "xml"  # no Encrypt: refused, not a RecursionError


BAD_ARGUMENTS: list[tuple[tuple[Any, ...], type[Exception]]] = [
    (("ab", KEY, CORPID), ValueError),
    (("t" * 33, KEY, CORPID), ValueError),
    (("", KEY, CORPID), ValueError),
    ((None, KEY, CORPID), TypeError),
    ((TOKEN, KEY[:-1], CORPID), ValueError),
    ((TOKEN, KEY + "A", CORPID), ValueError),
    ((TOKEN, KEY[:-1] + "=", CORPID), ValueError),
    ((TOKEN, KEY[:-1] + "!", CORPID), ValueError),
    ((TOKEN, KEY.encode(), CORPID), TypeError),
    ((TOKEN, KEY, None), TypeError),
    ((TOKEN, KEY, 123), TypeError),
]


@pytest.mark.parametrize(("args", "expected"), BAD_ARGUMENTS)
def test_constructor_validation_refuses_bad_configuration_without_showing_it(
    args: tuple[Any, ...], expected: type[Exception]
) -> None:
    error: BaseException | None = None
    try:
        CallbackCrypto(*args)
    except (ValueError, TypeError) as caught:
        error = caught
    assert type(error) is expected
    assert error is not None
    record = tracker_record(error)
    for secret in (TOKEN, KEY, KEY[:-1], repr(KEY.encode())):
        assert secret not in record


@pytest.mark.parametrize("max_age", [-1, float("nan"), "300", True])
def test_max_age_must_be_seconds_or_none(max_age: Any) -> None:
    with pytest.raises(ValueError):
        crypto(max_age=max_age)


def test_the_repr_shows_the_receive_id_but_neither_token_nor_key() -> None:
    text = repr(crypto())
    assert text == f"CallbackCrypto(receive_id={CORPID!r}, max_age=300)"
    assert TOKEN not in text
    assert KEY not in text


def failures() -> list[CallbackError]:
    receiver = crypto()
    sealed = receiver.seal(KF_EVENT)
    query = {"msg_signature": sealed.msg_signature, "timestamp": sealed.timestamp}
    secret_xml = f"<xml><A>{MARKER}</xml>"
    bad_xml = receiver.seal(secret_xml)
    return [
        raised(receiver.decrypt, sealed.body, **query, nonce="other"),
        raised(receiver.verify_url, "0" * 40, "1", "n", "QUJD"),
        raised(
            receiver.decrypt,
            bad_xml.body,
            msg_signature=bad_xml.msg_signature,
            timestamp=bad_xml.timestamp,
            nonce=bad_xml.nonce,
        ),
        refused(seal_raw(pkcs7(framed(MARKER.encode(), b"someone-else")))),
        refused(seal_raw(pkcs7(framed(MARKER.encode() + b"\xff")))),
        refused(seal_raw(framed(MARKER.encode()) + b"\x00" * (-len(framed(MARKER.encode())) % 32))),
        refused(seal_raw(pkcs7(framed(MARKER.encode(), length=999)))),
        raised(receiver.decrypt, LAUGHS, msg_signature="x", timestamp="1", nonce="n"),
        raised(crypto().verify_official_account_url, sign("1", "n"), "1", "n", "e"),
    ]


def test_no_refusal_shows_the_token_the_key_or_the_plaintext() -> None:
    errors = failures()
    assert {e.reason for e in errors} == {"signature", "timestamp", "decrypt", "receive_id", "xml"}
    for error in errors:
        assert_nothing_secret(error, "someone-else")


def test_a_callback_error_is_a_wechat_error_and_a_value_error_that_pickles() -> None:
    error = refused(seal_raw(pkcs7(framed(b"<xml/>", b"other"))))
    assert isinstance(error, WeChatError)
    assert isinstance(error, ValueError)
    assert wechat_kf.CallbackError is CallbackError
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.reason, copy.message, str(copy)) == (
        CallbackError,
        "receive_id",
        error.message,
        str(error),
    )
    assert str(error).startswith("callback refused (receive_id): ")


def decrypted(inner: str, receive_id: str = CORPID) -> object:
    receiver = crypto(receive_id)
    sealed = receiver.seal(inner)
    return receiver.decrypt(
        sealed.body,
        msg_signature=sealed.msg_signature,
        timestamp=sealed.timestamp,
        nonce=sealed.nonce,
    )


def test_a_wecom_kf_msg_or_event_becomes_kf_msg_or_event_with_its_token_hidden() -> None:
    event = decrypted(KF_EVENT)
    assert event == KfMsgOrEvent(
        corpid="ww12345678910",
        open_kfid="wkxxxxxxx",
        token=f"ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR-{MARKER}",
        create_time=datetime(2012, 9, 28, 11, 31, tzinfo=timezone.utc),
    )
    assert MARKER not in repr(event)
    assert pickle.loads(pickle.dumps(event)) == event
    assert type(event).__module__ == "wechat_kf.callbacks"
    assert event.create_time.tzinfo is timezone.utc  # type: ignore[attr-defined]


def test_a_component_verify_ticket_push_becomes_component_verify_ticket() -> None:
    ticket = decrypted(
        "<xml><AppId>wx3f1d5bd8bc6b2c8e</AppId><CreateTime>1413192605</CreateTime>"
        f"<InfoType>component_verify_ticket</InfoType><ComponentVerifyTicket>ticket@@@{MARKER}"
        "</ComponentVerifyTicket></xml>",
        "wx3f1d5bd8bc6b2c8e",
    )
    assert ticket == ComponentVerifyTicket(
        "wx3f1d5bd8bc6b2c8e", f"ticket@@@{MARKER}", datetime.fromtimestamp(1413192605, timezone.utc)
    )
    assert MARKER not in repr(ticket)


def test_a_suite_ticket_push_becomes_suite_ticket_timed_by_its_timestamp() -> None:
    ticket = decrypted(
        "<xml><SuiteId><![CDATA[ww4asffe99e54c0f4c]]></SuiteId><InfoType><![CDATA[suite_ticket]]>"
        "</InfoType><TimeStamp>1403610513</TimeStamp><SuiteTicket><![CDATA[asdfasfdasdfasdf]]>"
        "</SuiteTicket></xml>",
        "ww4asffe99e54c0f4c",
    )
    assert ticket == SuiteTicket(
        "ww4asffe99e54c0f4c", "asdfasfdasdfasdf", datetime.fromtimestamp(1403610513, timezone.utc)
    )


@pytest.mark.parametrize(
    ("info_type", "extra"),
    [
        ("authorized", "<AuthorizationCode>queryauthcode@@@x</AuthorizationCode>"),
        ("create_auth", "<AuthCode><![CDATA[AUTHCODE]]></AuthCode>"),
        ("cancel_auth", "<AuthCorpId><![CDATA[wxf8b4f85f3a794e77]]></AuthCorpId>"),
    ],
)
def test_authorization_changes_become_auth_change_with_every_field(
    info_type: str, extra: str
) -> None:
    change = decrypted(
        f"<xml><AppId>wxcomponent</AppId><CreateTime>1413192760</CreateTime>"
        f"<InfoType>{info_type}</InfoType><AuthorizerAppid>wxauth</AuthorizerAppid>{extra}</xml>"
    )
    assert isinstance(change, AuthChange)
    assert change.info_type == info_type
    assert change.fields["AuthorizerAppid"] == "wxauth"
    assert change.fields["InfoType"] == info_type
    if info_type == "authorized":
        assert change.fields["AuthorizationCode"] == "queryauthcode@@@x"
        assert "queryauthcode" not in repr(change)


def test_an_official_account_text_message_becomes_official_account_message() -> None:
    message = decrypted(
        "<xml><ToUserName><![CDATA[gh_123]]></ToUserName><FromUserName><![CDATA[oUser]]>"
        "</FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[你好 <b>]]></Content><MsgId>1234567890123456</MsgId></xml>",
        "wxappid",
    )
    assert isinstance(message, OfficialAccountMessage)
    assert (message.msg_type, message.event, message.from_user, message.to_user) == (
        "text",
        None,
        "oUser",
        "gh_123",
    )
    assert message.fields["Content"] == "你好 <b>"
    assert message.create_time == datetime.fromtimestamp(1348831860, timezone.utc)


def test_an_official_account_kf_create_session_event_keeps_its_kf_account() -> None:
    message = decrypted(
        "<xml><ToUserName><![CDATA[gh_123]]></ToUserName><FromUserName><![CDATA[oUser]]>"
        "</FromUserName><CreateTime>1399197672</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[kf_create_session]]></Event><KfAccount><![CDATA[test1@test]]>"
        "</KfAccount></xml>",
        "wxappid",
    )
    assert isinstance(message, OfficialAccountMessage)
    assert (message.msg_type, message.event) == ("event", "kf_create_session")
    assert message.fields["KfAccount"] == "test1@test"


def test_nested_elements_are_kept_by_path() -> None:
    message = decrypted(
        "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>"
        "<MsgType>event</MsgType><Event>scancode_push</Event><ScanCodeInfo><ScanType>qrcode"
        "</ScanType><ScanResult>1</ScanResult></ScanCodeInfo></xml>"
    )
    assert isinstance(message, OfficialAccountMessage)
    assert message.fields["ScanCodeInfo/ScanResult"] == "1"


@pytest.mark.parametrize(
    "inner",
    [
        "<xml><InfoType>something_new</InfoType><X>1</X></xml>",
        "<xml><Foo>bar</Foo></xml>",
        "<xml><MsgType>event</MsgType><Event>kf_msg_or_event</Event><CreateTime>1</CreateTime>"
        "<ToUserName>ww</ToUserName><OpenKfId>wk</OpenKfId></xml>",
        "<xml><InfoType>suite_ticket</InfoType><SuiteId>s</SuiteId><SuiteTicket>t</SuiteTicket>"
        "<TimeStamp>soon</TimeStamp></xml>",
        "<xml><MsgType>text</MsgType><FromUserName>o</FromUserName><ToUserName>g</ToUserName>"
        f"<CreateTime>{'9' * 30}</CreateTime></xml>",
    ],
    ids=["new info type", "no type", "kf event without token", "bad time", "time out of range"],
)
def test_unknown_or_incomplete_shapes_become_unknown_callback(inner: str) -> None:
    result = decrypted(inner)
    assert isinstance(result, UnknownCallback)
    assert result.fields == {e.tag: e.text or "" for e in ElementTree.fromstring(inner)}


def test_a_decrypt_costs_microseconds() -> None:
    receiver = crypto()
    sealed = receiver.seal(KF_EVENT)
    query = {"msg_signature": sealed.msg_signature, "timestamp": sealed.timestamp}
    runs = 2000
    seconds = timeit.timeit(
        lambda: receiver.decrypt(sealed.body, **query, nonce=sealed.nonce), number=runs
    )
    assert seconds / runs < 0.001  # about 40 us on a laptop; generous for a loaded CI machine


def test_a_sealed_url_check_verifies_to_its_echo_and_a_tampered_one_does_not() -> None:
    from wechat_kf.callbacks import CallbackCrypto

    crypto = CallbackCrypto("token123", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wwcorp")
    query = crypto.seal_url_check("echo-42")
    assert set(query) == {"msg_signature", "timestamp", "nonce", "echostr"}
    assert crypto.verify_url(**query) == "echo-42"
    with pytest.raises(CallbackError) as info:
        crypto.verify_url(**{**query, "echostr": query["echostr"][:-4] + "AAAA"})
    assert info.value.reason == "signature"
