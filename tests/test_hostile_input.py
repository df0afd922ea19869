"""Hostile input from both sides: arbitrary arguments never reach WeChat unless valid, and garbage
answers never escape as anything but a WeChatError."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._scripted import SECRET
from wechat_kf import (
    APIError,
    BatchError,
    InvalidResponseError,
    OfficialAccountClient,
    TransportError,
    WeChatError,
    WeComClient,
)
from wechat_kf._transport import MAX_BODY_BYTES
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio
HYPOTHESIS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def generator_of(items: list[Any]) -> Iterator[Any]:
    return (item for item in items)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.text(alphabet=" \t\n\r\u3000\u200b"),
    st.binary(max_size=20),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=5),
    st.tuples(scalars, scalars),
    st.dictionaries(st.text(max_size=5), scalars, max_size=3),
    st.lists(scalars, max_size=5).map(generator_of),
    st.just(["u"] * 5000),
    st.just(list(range(1, 5000))),
    st.sampled_from(["a@gh_fake", "客服_1@gh_fake", "wk" + "x" * 20, "u1", "ok_wx"]),
    st.lists(st.sampled_from(["u1", "u2", ""]), max_size=4),
    st.lists(st.integers(min_value=-2, max_value=3), max_size=4),
)


# What WeChat (and the fake) answer to a malformed argument: none of these may ever come back,
# because the SDK must have refused the argument itself.
ARGUMENT_ERRCODES = {65403, 65404, 65409, 40003, 40005, 40009, 40058, 60123}


def mostly(valid: st.SearchStrategy[Any], *near_misses: st.SearchStrategy[Any]) -> Any:
    """Usually valid, sometimes just past a limit, sometimes anything at all: so that one bad
    argument among good ones is tried often."""
    # sampled_from + flatmap keeps these weights (a nested one_of would be flattened).
    choices = [valid, valid, valid, *near_misses, values]
    return st.sampled_from(choices).flatmap(lambda strategy: strategy)


kf_accounts = mostly(
    st.from_regex(r"[A-Za-z0-9_]{1,10}@gh_fake", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_]{11,12}@gh_fake|[A-Za-z0-9_]{1,3}@[a-z]{31}", fullmatch=True),
)
nicknames = mostly(st.text(min_size=1, max_size=16), st.just(""), st.text(min_size=17, max_size=20))
wechat_ids = mostly(st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True), st.just("a b"))
avatars = mostly(st.binary(min_size=1, max_size=64), st.just(b""))
member_ids = mostly(
    st.lists(st.sampled_from(["u1", "u2", "ghost"]), min_size=1, max_size=3),
    st.lists(st.sampled_from(["u1", ""]), min_size=1, max_size=3),
    # Just off WeCom's userid rule: a space, a leading '_', a letter outside ASCII, 65 bytes.
    st.lists(
        st.sampled_from(["u1", "bad id", "_u1", "u1é", "张三", "u" * 65, "u1;", "u\n1"]),
        min_size=1,
        max_size=3,
    ),
    st.lists(st.text(max_size=70), min_size=1, max_size=3),
)
#: WeCom's userid rule, as the SDK must enforce it before sending.
USERID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
department_lists = mostly(
    st.lists(st.integers(1, 40), max_size=3),
    st.lists(st.integers(-2, 0), min_size=1, max_size=2),
    st.lists(st.booleans(), min_size=1, max_size=2),
)


async def outcome(fake: FakeWeChat, call: Callable[[], Any]) -> None:
    """Either the call is valid and reaches WeChat, or it is refused before any request."""
    try:
        with anyio.fail_after(10):
            result = await call()
    except (ValueError, TypeError):
        assert fake.calls == [], "a refused argument still sent a request"
    except WeChatError as exc:
        assert fake.calls, "a WeChatError without any request means bad input was not caught"
        errors = exc.errors if isinstance(exc, BatchError) else [exc]
        codes = {getattr(error, "errcode", None) for error in errors}
        assert not codes & ARGUMENT_ERRCODES, f"a malformed argument reached WeChat: {exc}"
        # the fake always answers well-formed JSON: not understanding it means we sent nonsense
        assert not any(isinstance(error, InvalidResponseError) for error in errors)
    else:
        items = getattr(result, "items", ())
        assert not {item.errcode for item in items} & ARGUMENT_ERRCODES
    assert not {c.errcode for c in fake.calls} & ARGUMENT_ERRCODES


@HYPOTHESIS
@given(method=st.sampled_from(["add", "update", "delete", "invite_worker", "upload_avatar"]),
       first=kf_accounts, nickname=nicknames, wechat_id=wechat_ids, avatar=avatars)  # fmt: skip
async def test_kf_account_methods_refuse_bad_arguments_before_sending(
    method: str, first: Any, nickname: Any, wechat_id: Any, avatar: Any
) -> None:
    fake = FakeWeChat()
    app = fake.register_official_account()
    async with (
        httpx.AsyncClient(transport=fake.transport) as http,
        OfficialAccountClient(app.appid, app.secret, http_client=http) as client,
    ):
        accounts = client.kf_accounts
        calls: dict[str, Callable[[], Any]] = {
            "add": lambda: accounts.add(first, nickname=nickname),
            "update": lambda: accounts.update(first, nickname=nickname),
            "delete": lambda: accounts.delete(first),
            "invite_worker": lambda: accounts.invite_worker(first, invite_wx=wechat_id),
            "upload_avatar": lambda: accounts.upload_avatar(first, avatar),
        }
        await outcome(fake, calls[method])


@HYPOTHESIS
@given(
    method=st.sampled_from(["add", "delete", "list"]),
    kfid=mostly(st.just("wkKNOWN"), st.just("wk KNOWN"), st.just("")),
    users=member_ids,
    deps=department_lists,
)
async def test_servicer_methods_refuse_bad_arguments_before_sending(
    method: str, kfid: Any, users: Any, deps: Any
) -> None:
    fake = FakeWeChat()
    app = fake.register_wecom_app()
    fake.add_members(app.corpid, ["u1", "u2"])
    fake.add_departments(app.corpid, range(1, 41))
    fake.create_kf_account(app.corpid, open_kfid="wkKNOWN")
    async with (
        httpx.AsyncClient(transport=fake.transport) as http,
        WeComClient(app.corpid, app.secret, http_client=http) as client,
    ):
        servicers = client.servicers
        calls: dict[str, Callable[[], Any]] = {
            "add": lambda: servicers.add(kfid, users, department_ids=deps),
            "delete": lambda: servicers.delete(kfid, users, department_ids=deps),
            "list": lambda: servicers.list(kfid),
        }
        await outcome(fake, calls[method])
    sent = [u for call in fake.calls if call.json for u in call.json.get("userid_list", [])]
    assert all(USERID.fullmatch(userid) for userid in sent), sent


CONSTRUCTOR_ARGS = [
    "appid_or_corpid", "secret", "token_provider", "token_store", "use_stable_token",
    "base_url", "timeout", "max_retries", "max_concurrency",
]  # fmt: skip


@HYPOTHESIS
@given(
    cls=st.sampled_from([OfficialAccountClient, WeComClient]),
    kwargs=st.dictionaries(st.sampled_from(CONSTRUCTOR_ARGS), values, max_size=5),
)
async def test_constructors_take_anything_and_either_work_or_raise_value_or_type_error(
    cls: Any, kwargs: dict[str, Any]
) -> None:
    kwargs = dict(kwargs)
    ident = kwargs.pop("appid_or_corpid", None)
    if cls is WeComClient:
        kwargs.pop("use_stable_token", None)
    else:
        kwargs.pop("max_concurrency", None)
    fake = FakeWeChat()
    async with httpx.AsyncClient(transport=fake.transport) as http:
        try:
            client = cls(ident, http_client=http, **kwargs)
        except (ValueError, TypeError):
            pass
        else:
            await client.aclose()
    assert fake.calls == []


# -- garbage from the server ---------------------------------------------------------------------


def json_values() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)
    )
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    )


shaped = st.fixed_dictionaries(
    {},
    optional={
        "errcode": st.one_of(st.integers(-2, 70000), st.text(max_size=4), st.floats(), st.none()),
        "errmsg": st.one_of(st.text(max_size=20), st.integers()),
        "kf_list": json_values(),
        "kf_online_list": json_values(),
        "result_list": json_values(),
        "servicer_list": json_values(),
    },
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "shaped", "truncated", "empty", "huge", "deep"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "empty":
        return b""
    if kind == "huge":
        return b" " * (MAX_BODY_BYTES + 1)
    if kind == "deep":
        return b"[" * 100_000 + b"]" * 100_000
    doc = json.dumps(draw(shaped if kind == "shaped" else json_values())).encode()
    if kind == "truncated":
        return doc[: draw(st.integers(0, max(len(doc) - 1, 0)))]
    return doc


@HYPOTHESIS
@given(
    body=bodies(),
    status=st.sampled_from([200, 200, 200, 201, 204, 302, 400, 404, 429, 500, 503]),
    content_type=st.sampled_from(["application/json", "text/html", "text/plain", None]),
    method=st.sampled_from(["list", "list_online", "add", "servicers.add", "servicers.list"]),
)
async def test_garbage_answers_raise_only_wechat_errors_and_never_hang(
    body: bytes, status: int, content_type: str | None, method: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path in ("/cgi-bin/stable_token", "/cgi-bin/gettoken"):
            return httpx.Response(200, json={"access_token": f"t-{SECRET}", "expires_in": 7200})
        headers = {"content-type": content_type} if content_type else {}
        return httpx.Response(status, content=body, headers=headers)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        oa = OfficialAccountClient("wx", SECRET, http_client=http, max_retries=1)
        wc = WeComClient("ww", SECRET, http_client=http, max_retries=1)
        calls: dict[str, Callable[[], Any]] = {
            "list": oa.kf_accounts.list,
            "list_online": oa.kf_accounts.list_online,
            "add": lambda: oa.kf_accounts.add("a@gh_x", nickname="n"),
            "servicers.add": lambda: wc.servicers.add("wk1", ["u1"], department_ids=[2]),
            "servicers.list": lambda: wc.servicers.list("wk1"),
        }
        try:
            with anyio.fail_after(10):
                await calls[method]()
        except BatchError as exc:
            assert all(isinstance(e, (APIError, InvalidResponseError, TransportError))
                       for e in exc.errors)  # fmt: skip
        except TransportError:
            assert status >= 500 or status == 429
        except (APIError, InvalidResponseError):
            pass
        finally:
            await oa.aclose()
            await wc.aclose()


@HYPOTHESIS
@given(body=bodies(), path=st.sampled_from(["/cgi-bin/stable_token", "/cgi-bin/gettoken"]))
async def test_garbage_from_a_token_endpoint_raises_only_wechat_errors(
    body: bytes, path: str
) -> None:
    handler = lambda request: httpx.Response(200, content=body)  # noqa: E731
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client: Any = (
            OfficialAccountClient("wx", SECRET, http_client=http, max_retries=1)
            if path == "/cgi-bin/stable_token"
            else WeComClient("ww", SECRET, http_client=http, max_retries=1)
        )
        async with client:
            with anyio.fail_after(10):
                try:
                    if isinstance(client, WeComClient):
                        await client.servicers.list("wk1")
                    else:
                        await client.kf_accounts.list()
                except (APIError, InvalidResponseError):
                    pass
