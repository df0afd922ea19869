"""The transport: token on every attempt, errcode -> exception, the retry policy, decoding."""

from __future__ import annotations

import enum
import gzip
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests._scripted import SECRET, Scripted
from wechat_kf import (
    AccessTokenError,
    APIError,
    BatchError,
    ClientClosedError,
    InvalidResponseError,
    OfficialAccountClient,
    PermissionDeniedError,
    RateLimitError,
    TransportError,
    WeComClient,
)
from wechat_kf._base_url import check_base_url
from wechat_kf._transport import MAX_BODY_BYTES, redact

pytestmark = pytest.mark.anyio


@pytest.fixture
async def scripted(secret_watch: set[str]) -> AsyncIterator[Scripted]:
    script = Scripted()
    yield script
    secret_watch.add(SECRET)
    secret_watch.update(script.issued())


def oa_client(script: Scripted, **options: object) -> OfficialAccountClient:
    return OfficialAccountClient("wxappid", SECRET, http_client=script.client(), **options)  # type: ignore[arg-type]


async def test_busy_errcode_is_retried_then_succeeds(scripted: Scripted) -> None:
    scripted.business.extend([{"errcode": -1, "errmsg": "system error"}] * 2)
    async with oa_client(scripted) as client:
        assert await client.kf_accounts.list() == []
    assert len(scripted.business_requests) == 3


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
async def test_http_5xx_and_429_are_retried_for_an_idempotent_call(
    scripted: Scripted, status: int
) -> None:
    scripted.business.append(httpx.Response(status, text="<html>bad gateway</html>"))
    async with oa_client(scripted) as client:
        await client.kf_accounts.update("a@gh_x", nickname="n")
    assert len(scripted.business_requests) == 2


async def test_http_429_to_a_non_idempotent_call_is_retried_because_it_was_refused(
    scripted: Scripted,
) -> None:
    scripted.business.append(httpx.Response(429))
    async with oa_client(scripted) as client:
        await client.kf_accounts.add("a@gh_x", nickname="n")
    assert len(scripted.business_requests) == 2


async def test_http_5xx_after_all_retries_raises_transport_error_with_status(
    scripted: Scripted,
) -> None:
    scripted.business.extend([httpx.Response(502)] * 10)
    async with oa_client(scripted, max_retries=2) as client:
        with pytest.raises(TransportError) as info:
            await client.kf_accounts.list()
    assert info.value.status_code == 502
    assert len(scripted.business_requests) == 3


async def test_max_retries_one_means_at_most_two_requests(scripted: Scripted) -> None:
    scripted.business.extend([{"errcode": -1, "errmsg": "busy"}] * 5)
    async with oa_client(scripted, max_retries=1) as client:
        with pytest.raises(APIError) as info:
            await client.kf_accounts.list()
    assert info.value.errcode == -1
    assert len(scripted.business_requests) == 2


async def test_max_retries_zero_sends_once(scripted: Scripted) -> None:
    scripted.business.append(httpx.Response(503))
    async with oa_client(scripted, max_retries=0) as client:
        with pytest.raises(TransportError):
            await client.kf_accounts.list()
    assert len(scripted.business_requests) == 1


@pytest.mark.parametrize(
    ("errcode", "exc"), [(45009, RateLimitError), (48001, PermissionDeniedError)]
)
async def test_quota_and_permission_errors_raise_after_exactly_one_request(
    scripted: Scripted, errcode: int, exc: type[APIError]
) -> None:
    scripted.business.append({"errcode": errcode, "errmsg": f"nope rid: abc-{errcode}"})
    async with oa_client(scripted) as client:
        with pytest.raises(exc) as info:
            await client.kf_accounts.list()
    assert info.value.errcode == errcode
    assert info.value.rid == f"abc-{errcode}"
    assert info.value.path == "/cgi-bin/customservice/getkflist"
    assert len(scripted.business_requests) == 1


@pytest.mark.parametrize("errcode", [45011, 45033])
async def test_minute_quota_and_concurrency_limit_are_retried(
    scripted: Scripted, errcode: int
) -> None:
    scripted.business.append({"errcode": errcode, "errmsg": "slow down"})
    async with oa_client(scripted) as client:
        await client.kf_accounts.list()
    assert len(scripted.business_requests) == 2


async def test_expired_token_is_refreshed_and_the_call_retried_with_the_new_token(
    scripted: Scripted,
) -> None:
    scripted.business.append({"errcode": 42001, "errmsg": "access_token expired"})
    async with oa_client(scripted) as client:
        await client.kf_accounts.list()
    tokens = [r.url.params["access_token"] for r in scripted.business_requests]
    assert tokens == [f"tok-1-{SECRET}", f"tok-2-{SECRET}"]
    assert len(scripted.token_requests) == 2


async def test_each_request_carries_its_own_query_however_many_the_transport_has_built(
    scripted: Scripted,
) -> None:
    """The URLs with their queries are kept between calls (encoding the token is a good part
    of a call's own work): a kept one is never sent with another query or another token, and
    they are not all kept."""
    async with oa_client(scripted) as client:
        transport = client._transport
        for i in range(600):
            await transport.request("GET", "/cgi-bin/customservice/getkflist", params={"n": str(i)})
        await transport.request("GET", "/cgi-bin/customservice/getkflist", params={"n": "7"})
        assert len(transport._targets) <= 256
    sent = [(r.url.params["n"], r.url.params["access_token"]) for r in scripted.business_requests]
    assert sent == [(str(i), f"tok-1-{SECRET}") for i in [*range(600), 7]]


class _KfId(str, enum.Enum):
    SUPPORT = "wkSUPPORT0000000000000000000001"


async def test_a_query_value_that_equals_another_is_sent_as_its_own_text(
    scripted: Scripted,
) -> None:
    """Kept URLs are never handed to a call whose query is only equal to theirs (True == 1 ==
    1.0; a str enum's member == its value), and a str enum's member goes out as its value."""
    async with oa_client(scripted) as client:
        transport = client._transport
        for value in (True, 1, 1.0, _KfId.SUPPORT, _KfId.SUPPORT.value, _KfId.SUPPORT):
            await transport.request("GET", "/cgi-bin/customservice/getkflist", params={"n": value})  # type: ignore[dict-item]
    sent = [r.url.params["n"] for r in scripted.business_requests]
    assert sent == ["True", "1", "1.0", *[_KfId.SUPPORT.value] * 3]


async def test_a_servicer_listing_by_a_str_enum_member_asks_for_its_value(
    scripted: Scripted,
) -> None:
    async with WeComClient("wwcorp", SECRET, http_client=scripted.client()) as wc:
        await wc.servicers.list(_KfId.SUPPORT)
        await wc.servicers.list(_KfId.SUPPORT.value)
    sent = [r.url.params["open_kfid"] for r in scripted.business_requests]
    assert sent == [_KfId.SUPPORT.value] * 2


async def test_token_refresh_does_not_use_up_a_retry(scripted: Scripted) -> None:
    scripted.business.extend(
        [{"errcode": 40001, "errmsg": "not latest"}, {"errcode": -1, "errmsg": "busy"}]
    )
    async with oa_client(scripted, max_retries=1) as client:
        await client.kf_accounts.list()
    assert len(scripted.business_requests) == 3


async def test_second_token_error_raises_access_token_error(scripted: Scripted) -> None:
    scripted.business.extend([{"errcode": 40014, "errmsg": "invalid"}] * 3)
    async with oa_client(scripted) as client:
        with pytest.raises(AccessTokenError) as info:
            await client.kf_accounts.list()
    assert info.value.errcode == 40014
    assert len(scripted.business_requests) == 2
    assert len(scripted.token_requests) == 2


async def test_read_timeout_on_add_is_not_retried_and_may_have_applied(scripted: Scripted) -> None:
    scripted.business.append(httpx.ReadTimeout("timed out"))
    async with oa_client(scripted) as client:
        with pytest.raises(TransportError) as info:
            await client.kf_accounts.add("a@gh_x", nickname="n")
    assert info.value.maybe_applied is True
    assert "ReadTimeout" in str(info.value)
    assert info.value.__cause__ is None  # summarised: httpx's error holds the URL and its token
    assert len(scripted.business_requests) == 1


async def test_read_timeout_on_list_is_retried(scripted: Scripted) -> None:
    scripted.business.append(httpx.ReadTimeout("timed out"))
    async with oa_client(scripted) as client:
        assert await client.kf_accounts.list() == []
    assert len(scripted.business_requests) == 2


async def test_dropped_connection_on_update_is_retried_because_update_is_idempotent(
    scripted: Scripted,
) -> None:
    scripted.business.append(httpx.RemoteProtocolError("Server disconnected"))
    async with oa_client(scripted) as client:
        await client.kf_accounts.update("a@gh_x", nickname="n")
    assert len(scripted.business_requests) == 2


async def test_connect_error_is_retried_and_reported_as_not_applied(scripted: Scripted) -> None:
    scripted.business.extend([httpx.ConnectError("refused")] * 3)
    async with oa_client(scripted, max_retries=2) as client:
        with pytest.raises(TransportError) as info:
            await client.kf_accounts.add("a@gh_x", nickname="n")
    assert info.value.maybe_applied is False
    assert len(scripted.business_requests) == 3


@pytest.mark.parametrize(
    "body",
    [b"<html><body>502 Bad Gateway</body></html>", b'{"errcode": 0, "kf_li', b"", b"[1, 2]"],
    ids=["html", "truncated", "empty", "not-an-object"],
)
async def test_unreadable_body_raises_invalid_response_at_once(
    scripted: Scripted, body: bytes
) -> None:
    scripted.business.append(httpx.Response(200, content=body))
    async with oa_client(scripted) as client:
        with pytest.raises(InvalidResponseError):
            await client.kf_accounts.list()
    assert len(scripted.business_requests) == 1


async def test_wrong_shape_raises_invalid_response(scripted: Scripted) -> None:
    scripted.business.append({"kf_list": [{"kf_account": 12.5}]})
    async with oa_client(scripted) as client:
        with pytest.raises(InvalidResponseError):
            await client.kf_accounts.list()


async def test_errcode_read_from_a_wrong_content_type_still_maps(scripted: Scripted) -> None:
    scripted.business.append(
        httpx.Response(200, content=b'{"errcode":65406,"errmsg":"exists"}', headers={})
    )
    async with oa_client(scripted) as client:
        with pytest.raises(APIError) as info:
            await client.kf_accounts.add("a@gh_x", nickname="n")
    assert info.value.errcode == 65406


async def test_oversized_body_raises_invalid_response(scripted: Scripted) -> None:
    scripted.business.append(httpx.Response(200, content=b" " * (MAX_BODY_BYTES + 1)))
    async with oa_client(scripted) as client:
        with pytest.raises(InvalidResponseError):
            await client.kf_accounts.list()


async def test_redirect_is_not_followed_and_never_carries_the_token_elsewhere(
    scripted: Scripted,
) -> None:
    scripted.business.append(
        httpx.Response(302, headers={"location": "https://evil.example/steal"})
    )
    async with oa_client(scripted) as client:
        with pytest.raises(InvalidResponseError) as info:
            await client.kf_accounts.list()
    assert info.value.status_code == 302
    assert all(r.url.host == "api.weixin.qq.com" for r in scripted.requests)


async def test_redirect_is_not_followed_even_when_the_callers_client_follows(
    scripted: Scripted,
) -> None:
    scripted.business.append(httpx.Response(302, headers={"location": "https://evil.example/"}))
    http = httpx.AsyncClient(transport=httpx.MockTransport(scripted), follow_redirects=True)
    async with OfficialAccountClient("wxappid", SECRET, http_client=http) as client:
        with pytest.raises(InvalidResponseError):
            await client.kf_accounts.list()
    assert all(r.url.host == "api.weixin.qq.com" for r in scripted.requests)


async def test_access_token_is_sent_on_every_attempt(scripted: Scripted) -> None:
    scripted.business.extend([httpx.Response(503), httpx.Response(503)])
    async with oa_client(scripted) as client:
        await client.kf_accounts.list()
    assert [r.url.params.get("access_token") for r in scripted.business_requests] == [
        f"tok-1-{SECRET}"
    ] * 3


async def test_closed_client_refuses_calls(scripted: Scripted) -> None:
    client = oa_client(scripted)
    await client.aclose()
    with pytest.raises(ClientClosedError):
        await client.kf_accounts.list()
    assert scripted.requests == []


async def test_debug_line_per_request_and_warning_per_retry(
    scripted: Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.business.append({"errcode": -1, "errmsg": "busy"})
    caplog.set_level(logging.DEBUG, logger="wechat_kf")
    async with oa_client(scripted) as client:
        await client.kf_accounts.list()
    debug = [r for r in caplog.records if r.name == "wechat_kf.transport" and r.levelno == 10]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len([r for r in debug if "getkflist" in r.getMessage()]) == 2
    assert len(warnings) == 1
    assert "errcode -1" in warnings[0].getMessage()
    assert "retrying in" in warnings[0].getMessage()


async def test_httpx_request_log_line_has_the_token_redacted(
    scripted: Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with oa_client(scripted, use_stable_token=False) as client:
        await client.kf_accounts.list()
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any("access_token=<redacted>" in line for line in lines)
    assert any("secret=<redacted>" in line for line in lines)
    assert not any(SECRET in line for line in lines)


def test_plain_http_is_refused_unless_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        check_base_url("http://api.weixin.qq.com")
    with pytest.raises(ValueError, match="https"):
        check_base_url("http://10.0.0.1:8080")
    assert check_base_url("http://127.0.0.1:8765/") == "http://127.0.0.1:8765"
    assert check_base_url("http://localhost:8765") == "http://localhost:8765"
    assert check_base_url("http://[::1]:8765") == "http://[::1]:8765"
    assert check_base_url("https://api.weixin.qq.com") == "https://api.weixin.qq.com"


def test_client_refuses_plain_http_base_url() -> None:
    with pytest.raises(ValueError):
        OfficialAccountClient("wx", "s", base_url="http://api.weixin.qq.com")


def test_redact_masks_every_secret_parameter() -> None:
    text = "GET /x?access_token=abc&corpsecret=def&secret=ghi&corpid=ww1"
    assert redact(text) == (
        "GET /x?access_token=<redacted>&corpsecret=<redacted>&secret=<redacted>&corpid=ww1"
    )


NON_IDEMPOTENT = {
    "add": lambda c: c.kf_accounts.add("a@gh_x", nickname="n"),
    "invite_worker": lambda c: c.kf_accounts.invite_worker("a@gh_x", invite_wx="wx_b"),
    "delete": lambda c: c.kf_accounts.delete("a@gh_x"),
    "upload_avatar": lambda c: c.kf_accounts.upload_avatar("a@gh_x", b"\xff\xd8\xff jpeg"),
}


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize("call", NON_IDEMPOTENT.values(), ids=NON_IDEMPOTENT.keys())
async def test_http_5xx_to_a_non_idempotent_call_is_sent_once_and_may_have_applied(
    scripted: Scripted, call: Any, status: int
) -> None:
    scripted.business.extend([httpx.Response(status)] * 4)
    async with oa_client(scripted, max_retries=3) as client:
        with pytest.raises(TransportError) as info:
            await call(client)
    assert len(scripted.business_requests) == 1
    assert info.value.maybe_applied is True
    assert info.value.status_code == status


GARBAGE_ERRCODES = ["²", "--1", "1" * 5000, "-", " ", "0x10", 1.5, None, [], {}, True, "٣"]


@pytest.mark.parametrize("errcode", GARBAGE_ERRCODES, ids=repr)
async def test_an_errcode_of_any_json_value_is_an_invalid_response_never_a_bare_error(
    scripted: Scripted, errcode: object
) -> None:
    scripted.business.append({"errcode": errcode, "errmsg": "?"})
    async with oa_client(scripted) as client:
        with pytest.raises(InvalidResponseError):
            await client.kf_accounts.list()
    assert len(scripted.business_requests) == 1


@pytest.mark.parametrize("errcode", GARBAGE_ERRCODES, ids=repr)
async def test_a_garbage_errcode_from_a_token_endpoint_is_an_invalid_response(
    scripted: Scripted, errcode: object
) -> None:
    scripted.token_replies.append({"errcode": errcode, "errmsg": "?"})
    async with oa_client(scripted) as client:
        with pytest.raises(InvalidResponseError):
            await client.kf_accounts.list()


@pytest.mark.parametrize("errcode", ["40001", " 45009 ", "-1"])
async def test_an_errcode_sent_as_a_decimal_string_still_maps(
    scripted: Scripted, errcode: str
) -> None:
    scripted.business.extend([{"errcode": errcode, "errmsg": "x"}] * 5)
    async with oa_client(scripted, max_retries=1) as client:
        with pytest.raises(APIError) as info:
            await client.kf_accounts.list()
    assert info.value.errcode == int(errcode)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (httpx.DecodingError("bad gzip"), InvalidResponseError),
        (httpx.TooManyRedirects("loop"), TransportError),
        (httpx.StreamError("stream"), TransportError),
        (httpx.WriteError("broken pipe"), TransportError),
        (RuntimeError("a transport bug"), TransportError),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), TransportError),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__,
)
async def test_every_exception_of_the_exchange_leaves_as_a_wechat_error(
    scripted: Scripted, raised: Exception, expected: type[Exception]
) -> None:
    scripted.business.append(raised)
    async with oa_client(scripted) as client:
        with pytest.raises(expected):
            await client.kf_accounts.add("a@gh_x", nickname="n")
    assert len(scripted.business_requests) == 1


async def test_an_encoded_answer_built_in_memory_is_decoded_by_the_sdk(
    scripted: Scripted,
) -> None:
    body = gzip.compress(b'{"kf_list": [{"kf_account": "a@gh_x"}]}')
    scripted.business.append(
        httpx.Response(200, content=body, headers={"Content-Encoding": "gzip"})
    )
    async with oa_client(scripted) as client:
        assert [a.kf_account for a in await client.kf_accounts.list()] == ["a@gh_x"]


async def test_the_sdk_asks_only_for_encodings_it_can_bound(scripted: Scripted) -> None:
    async with oa_client(scripted) as client:
        await client.kf_accounts.list()
    assert {r.headers["accept-encoding"] for r in scripted.requests} == {"gzip, deflate"}


async def test_json_bodies_go_out_as_utf8_not_unicode_escapes(scripted: Scripted) -> None:
    async with oa_client(scripted) as client:
        await client.kf_accounts.add("a@gh_x", nickname="客服1")
    (request,) = scripted.business_requests
    assert request.content == '{"kf_account":"a@gh_x","nickname":"客服1"}'.encode()
    assert request.headers["content-type"] == "application/json"


async def _keyed_send(client: OfficialAccountClient) -> dict[str, Any]:
    return await client._transport.request(
        "POST",
        "/cgi-bin/kf/send_msg",
        json={"msgid": "k" * 32},
        idempotent=True,
        idempotency_key="k" * 32,
    )


async def test_a_refusal_after_a_maybe_applied_attempt_is_a_maybe_applied_error_with_the_key(
    scripted: Scripted,
) -> None:
    refusal = {"errcode": 95001, "errmsg": "msgid already used rid: r-1"}
    scripted.business.extend([httpx.Response(502), refusal])
    async with oa_client(scripted) as client:
        with pytest.raises(TransportError) as info:
            await _keyed_send(client)
    assert info.value.maybe_applied is True
    assert info.value.msgid == "k" * 32
    assert isinstance(info.value.__cause__, APIError)
    assert info.value.__cause__.errcode == 95001
    assert len(scripted.business_requests) == 2
    sent = [r.content for r in scripted.business_requests]
    assert sent[0] == sent[1]  # the same key on every attempt


async def test_a_refusal_after_attempts_that_never_left_stays_the_refusal(
    scripted: Scripted,
) -> None:
    refusal = {"errcode": 95018, "errmsg": "send msg session status invalid"}
    scripted.business.extend([httpx.ConnectError("refused"), refusal])
    async with oa_client(scripted) as client:
        with pytest.raises(APIError) as info:
            await _keyed_send(client)
    assert info.value.errcode == 95018


async def test_a_keyed_call_whose_every_attempt_failed_names_its_key(scripted: Scripted) -> None:
    scripted.business.extend([httpx.Response(502)] * 4)
    async with oa_client(scripted, max_retries=1) as client:
        with pytest.raises(TransportError) as info:
            await _keyed_send(client)
    assert (info.value.maybe_applied, info.value.msgid) == (True, "k" * 32)
    assert "msgid=" + "k" * 32 in str(info.value)


async def test_an_unkeyed_call_never_has_a_msgid(scripted: Scripted) -> None:
    scripted.business.extend([httpx.Response(502)] * 4)
    async with oa_client(scripted, max_retries=1) as client:
        with pytest.raises(TransportError) as info:
            await client.kf_accounts.list()
    assert info.value.msgid is None


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "text/plain", "application/octet-stream"]
)
async def test_a_download_answered_with_a_json_error_raises_it(
    scripted: Scripted, content_type: str
) -> None:
    body = b'{"errcode":40007,"errmsg":"invalid media_id rid: r-2"}'
    scripted.business.append(
        httpx.Response(200, content=body, headers={"content-type": content_type})
    )
    async with oa_client(scripted) as client:
        with pytest.raises(APIError) as info:
            await client._transport.download(
                "/cgi-bin/media/get", params={"media_id": "m"}, max_bytes=100
            )
    assert info.value.errcode == 40007


async def test_a_download_returns_the_bytes_and_the_headers_that_describe_them(
    scripted: Scripted,
) -> None:
    headers = {
        "content-type": "image/png",
        "content-disposition": 'attachment; filename="a.png"',
        "x-other": "not kept",
        "content-encoding": "gzip",
    }
    scripted.business.append(
        httpx.Response(200, content=gzip.compress(b"\x89PNG" * 10), headers=headers)
    )
    async with oa_client(scripted) as client:
        content, described = await client._transport.download(
            "/cgi-bin/media/get", params={"media_id": "m"}, max_bytes=1000
        )
    assert content == b"\x89PNG" * 10
    assert described == {
        "content-type": "image/png",
        "content-disposition": 'attachment; filename="a.png"',
    }
    assert scripted.business_requests[0].url.params["media_id"] == "m"


async def test_a_download_past_its_cap_is_refused(scripted: Scripted) -> None:
    scripted.business.extend([httpx.Response(200, content=b"x" * 101)] * 4)
    async with oa_client(scripted) as client:
        with pytest.raises(InvalidResponseError):
            await client._transport.download(
                "/cgi-bin/media/get", params={"media_id": "m"}, max_bytes=100
            )


async def test_a_keyed_send_whose_repeat_meets_a_rejected_token_stays_maybe_applied(
    scripted: Scripted,
) -> None:
    rejected = {"errcode": 40001, "errmsg": "invalid credential"}
    scripted.business.extend([httpx.Response(502), rejected, rejected])
    async with oa_client(scripted) as client:
        with pytest.raises(TransportError) as info:
            await _keyed_send(client)
    assert (info.value.maybe_applied, info.value.msgid) == (True, "k" * 32)
    assert isinstance(info.value.__cause__, AccessTokenError)


async def test_a_keyed_send_whose_repeat_is_unreadable_stays_maybe_applied(
    scripted: Scripted,
) -> None:
    scripted.business.extend([httpx.Response(502), httpx.Response(200, text="<html>")])
    async with oa_client(scripted) as client:
        with pytest.raises(TransportError) as info:
            await _keyed_send(client)
    assert (info.value.maybe_applied, info.value.msgid) == (True, "k" * 32)
    assert isinstance(info.value.__cause__, InvalidResponseError)


async def test_a_call_stays_maybe_applied_when_a_later_attempt_never_left(
    scripted: Scripted,
) -> None:
    scripted.business.extend([httpx.Response(502)] + [httpx.ConnectError("refused")] * 3)
    async with oa_client(scripted) as client:
        with pytest.raises(TransportError) as info:
            await client.kf_accounts.update("a@gh_x", nickname="n")
    assert info.value.maybe_applied is True
    assert len(scripted.business_requests) == 4


async def test_a_downloaded_file_that_is_a_json_object_is_the_file(scripted: Scripted) -> None:
    content = b'{"errcode": 0, "orders": [1, 2]}'
    headers = {"content-type": "application/json"}
    scripted.business.append(httpx.Response(200, content=content, headers=headers))
    async with oa_client(scripted) as client:
        got, described = await client._transport.download(
            "/cgi-bin/media/get", params={"media_id": "m"}, max_bytes=1000
        )
    assert (got, described["content-type"]) == (content, "application/json")


async def test_a_request_that_cannot_be_built_is_a_transport_error_never_sent(
    scripted: Scripted,
) -> None:
    files = {"media": ("bad\udc80name.png", b"\x89PNG" * 4, "image/png")}
    async with oa_client(scripted) as client:
        with pytest.raises(TransportError) as info:
            await client._transport.request("POST", "/x", files=files, idempotent=True)
    assert info.value.maybe_applied is False
    assert scripted.business_requests == []


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(502, text="bad gateway"), httpx.ReadError("lost"), httpx.ReadTimeout("slow")],
    ids=["502", "dropped", "read-timeout"],
)
@pytest.mark.parametrize("platform", ["oa-classic", "wecom"])
async def test_a_failed_get_token_fetch_is_never_maybe_applied(
    scripted: Scripted, failure: Any, platform: str
) -> None:
    """Nothing a token GET does can be applied, and the business call behind it never left:
    whatever failed, retried to the end, the caller is told so."""
    scripted.token_replies.extend([failure] * 3)
    client: Any
    if platform == "wecom":
        client = WeComClient("wwcorp", SECRET, http_client=scripted.client(), max_retries=2)
        async with client:
            with pytest.raises(BatchError) as batch:
                await client.servicers.add("wkKF", ["u1"])
        error = batch.value.errors[0]
    else:
        client = oa_client(scripted, use_stable_token=False, max_retries=2)
        async with client:
            with pytest.raises(TransportError) as info:
                await client.kf_accounts.add("a@gh_x", nickname="n")
        error = info.value
    assert isinstance(error, TransportError)
    assert error.maybe_applied is False
    assert [r.method for r in scripted.token_requests] == ["GET"] * 3  # retried: idempotent
    assert scripted.business_requests == []
