"""The OpenTelemetry hook follows the HTTP client semantic conventions, proven through the SDK's
in-memory exporters: ``http.request.method``, ``server.address``, ``server.port``, ``url.full``
with every credential ``REDACTED``, ``http.response.status_code``, ``error.type`` and
``http.request.resend_count`` on each attempt's span, and ``http.client.request.duration`` in
seconds."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from wechat_kf import OfficialAccountClient, TransportError, WeComClient

pytestmark = pytest.mark.anyio

CORPID, SECRET = "wwotelcorp00001", "otel-secret-never-shown-0123456789"
TOKEN = "otel-token-never-shown-abcdefghijklmnopqrstu"
KFID = "wkOTEL0000000000000000000000001"
LIST = f"https://qyapi.weixin.qq.com/cgi-bin/kf/servicer/list?open_kfid={KFID}"


@pytest.fixture(autouse=True)
def _watch(secret_watch: set[str]) -> None:
    secret_watch.update({SECRET, TOKEN})


def scripted(*business: Any, delay: float = 0.0) -> httpx.AsyncClient:
    """An http_client whose token endpoints issue TOKEN and whose business calls answer each of
    ``business`` in turn (a status, an exception, or a JSON body), ``delay`` seconds late."""
    replies = list(business)

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path in ("/cgi-bin/gettoken", "/cgi-bin/token"):
            return httpx.Response(200, json={"access_token": TOKEN, "expires_in": 7200})
        await anyio.sleep(delay)
        reply = replies.pop(0) if replies else {"errcode": 0, "servicer_list": []}
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, int):
            return httpx.Response(reply, text="<html>gateway</html>")
        return httpx.Response(200, json=reply)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def wecom(http: httpx.AsyncClient, hook: Any, **options: Any) -> WeComClient:
    return WeComClient(CORPID, SECRET, http_client=http, hooks=[hook], **options)


def metric(reader: Any, name: str) -> Any:
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for found in scope.metrics:
                if found.name == name:
                    return found
    raise AssertionError(f"no metric {name}")


async def test_each_attempt_is_a_client_span_with_the_http_client_attributes(
    otel: tuple[Any, Any, Any],
) -> None:
    from opentelemetry.trace import SpanKind, StatusCode

    hook, spans, _ = otel
    async with scripted() as http, wecom(http, hook) as wc:
        assert await wc.servicers.list(KFID) == []
    token_span, list_span = spans.get_finished_spans()
    assert token_span.name == "GET /cgi-bin/gettoken"
    assert token_span.attributes["url.full"] == (
        f"https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpid={CORPID}&corpsecret=REDACTED"
    )
    assert list_span.name == "GET /cgi-bin/kf/servicer/list"
    assert list_span.kind is SpanKind.CLIENT
    assert dict(list_span.attributes) == {
        "http.request.method": "GET",
        "server.address": "qyapi.weixin.qq.com",
        "server.port": 443,
        "url.full": f"{LIST}&access_token=REDACTED",
        "url.path": "/cgi-bin/kf/servicer/list",
        "wechat.call": "business",
        "http.response.status_code": 200,
        "wechat.errcode": 0,
    }
    assert list_span.status.status_code is StatusCode.UNSET


async def test_a_resent_request_counts_its_resends_and_an_http_error_is_its_status(
    otel: tuple[Any, Any, Any],
) -> None:
    from opentelemetry.trace import StatusCode

    hook, spans, _ = otel
    async with scripted(502, 503) as http, wecom(http, hook) as wc:
        await wc.servicers.list(KFID)
    attempts = [s for s in spans.get_finished_spans() if s.name.endswith("/servicer/list")]
    seen = [
        (
            s.attributes.get("http.request.resend_count"),
            s.attributes["http.response.status_code"],
            s.attributes.get("error.type"),
            s.status.status_code,
        )
        for s in attempts
    ]
    assert seen == [
        (None, 502, "502", StatusCode.ERROR),
        (1, 503, "503", StatusCode.ERROR),
        (2, 200, None, StatusCode.UNSET),
    ]
    assert "wechat.attempt" not in attempts[0].attributes


async def test_a_request_that_got_no_answer_has_no_status_and_names_its_error(
    otel: tuple[Any, Any, Any],
) -> None:
    hook, spans, reader = otel
    async with scripted(httpx.ReadError("lost")) as http, wecom(http, hook, max_retries=0) as wc:
        with pytest.raises(TransportError):
            await wc.kf_accounts.add("客服", media_id="m")
    span = spans.get_finished_spans()[-1]
    assert "http.response.status_code" not in span.attributes
    assert span.attributes["error.type"] == "TransportError"
    failed = [
        p for p in metric(reader, "http.client.request.duration").data.data_points
        if p.attributes.get("error.type") == "TransportError"
    ]  # fmt: skip
    assert [p.attributes.get("http.response.status_code") for p in failed] == [None]


async def test_the_request_duration_metric_is_in_seconds_with_the_conventions_attributes(
    otel: tuple[Any, Any, Any],
) -> None:
    hook, _, reader = otel
    async with scripted(502, delay=0.05) as http, wecom(http, hook) as wc:
        await wc.servicers.list(KFID)
    duration = metric(reader, "http.client.request.duration")
    assert duration.unit == "s"
    points = {
        (p.attributes.get("http.response.status_code"), p.attributes.get("error.type")): p
        for p in duration.data.data_points
        if "gettoken" not in str(p.attributes)
    }
    assert set(points) == {(502, "502"), (200, None)}
    ok = points[(200, None)]
    assert dict(ok.attributes) == {
        "http.request.method": "GET",
        "server.address": "qyapi.weixin.qq.com",
        "server.port": 443,
        "http.response.status_code": 200,
    }
    assert 0.05 <= ok.sum < 5  # one attempt of 50 ms, in seconds
    assert list(ok.explicit_bounds) == [
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10
    ]  # fmt: skip
    assert metric(reader, "wechat_kf.request.duration").unit == "s"  # ours stays


async def test_no_span_or_metric_holds_a_token_or_a_secret(otel: tuple[Any, Any, Any]) -> None:
    hook, spans, reader = otel
    async with (
        scripted(502) as http,
        wecom(http, hook) as wc,
        OfficialAccountClient(
            "wxotel", SECRET, http_client=http, use_stable_token=False, hooks=[hook]
        ) as oa,
    ):
        await wc.servicers.list(KFID)
        await oa.kf_accounts.list()
    finished = spans.get_finished_spans()
    classic = [s for s in finished if s.name == "GET /cgi-bin/token"]
    assert classic[0].attributes["url.full"].endswith("&appid=wxotel&secret=REDACTED")
    shown = repr([(s.name, dict(s.attributes)) for s in finished])
    shown += repr(reader.get_metrics_data().to_json())
    assert TOKEN not in shown
    assert SECRET not in shown
