"""The clients: constructor rules, lifecycle, repr, the httpx client they own or borrow."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from wechat_kf import (
    ClientClosedError,
    MemoryTokenStore,
    OfficialAccountClient,
    StaticTokenProvider,
    WeComClient,
)
from wechat_kf.testing import FakeWeChat

CLIENTS = [(OfficialAccountClient, "appid"), (WeComClient, "corpid")]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"app": "wx1"},
        {"secret": "s"},
        {"app": "wx1", "secret": "s", "token_provider": StaticTokenProvider("t")},
        {"secret": "s", "token_provider": StaticTokenProvider("t")},
        {"token_provider": StaticTokenProvider("t"), "token_store": MemoryTokenStore()},
    ],
    ids=["nothing", "id only", "secret only", "both", "secret+provider", "provider+store"],
)
@pytest.mark.parametrize(("cls", "id_name"), CLIENTS)
def test_credentials_xor_token_provider_else_value_error(
    cls: Any, id_name: str, kwargs: dict[str, Any]
) -> None:
    kwargs = dict(kwargs)
    if "app" in kwargs:
        kwargs[id_name] = kwargs.pop("app")
    with pytest.raises(ValueError):
        cls(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"timeout": 0}, ValueError),
        ({"timeout": "10"}, TypeError),
        ({"max_retries": -1}, ValueError),
        ({"max_retries": 1.5}, TypeError),
        ({"http_client": object()}, TypeError),
        ({"base_url": "http://example.com"}, ValueError),
        ({"base_url": "ftp://api.weixin.qq.com"}, ValueError),
    ],
)
@pytest.mark.parametrize(("cls", "id_name"), CLIENTS)
def test_bad_options_are_refused(
    cls: Any, id_name: str, kwargs: dict[str, Any], exc: type[Exception]
) -> None:
    with pytest.raises(exc):
        cls("id1", "secret", **kwargs)


@pytest.mark.parametrize("value", [0, -1, True, "8"])
def test_wecom_max_concurrency_must_be_a_positive_int(value: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        WeComClient("ww", "s", max_concurrency=value)


@pytest.mark.parametrize(("cls", "id_name"), CLIENTS)
def test_non_str_credentials_are_a_type_error(cls: Any, id_name: str) -> None:
    with pytest.raises(TypeError):
        cls(123, "secret")


def test_repr_shows_the_app_id_and_never_the_secret() -> None:
    oa = OfficialAccountClient("wxapp123", "super-secret-1")
    wc = WeComClient("wwcorp123", "super-secret-2")
    assert repr(oa) == "OfficialAccountClient(appid='wxapp123')"
    assert repr(wc) == "WeComClient(corpid='wwcorp123')"
    for obj in (oa, wc, oa.kf_accounts, wc.servicers, oa.token_provider, wc.token_provider):
        assert "super-secret" not in repr(obj)
        assert "super-secret" not in str(vars(obj).keys())


pytestmark = pytest.mark.anyio


async def test_opening_sends_nothing(fake: FakeWeChat, http: httpx.AsyncClient) -> None:
    app = fake.register_official_account()
    async with OfficialAccountClient(app.appid, app.secret, http_client=http):
        pass
    assert fake.calls == []


async def test_async_with_closes_and_a_closed_client_refuses_calls(
    fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    app = fake.register_official_account()
    async with OfficialAccountClient(app.appid, app.secret, http_client=http) as client:
        await client.kf_accounts.list()
    assert client.closed
    with pytest.raises(ClientClosedError):
        await client.kf_accounts.list()
    with pytest.raises(RuntimeError):
        async with client:
            pass


async def test_the_callers_http_client_is_never_closed(
    fake: FakeWeChat, http: httpx.AsyncClient, corp: tuple[str, str, str]
) -> None:
    async with WeComClient(corp[0], corp[1], http_client=http) as client:
        await client.servicers.list(corp[2])
    assert not http.is_closed
    await WeComClient(corp[0], corp[1], http_client=http).aclose()
    assert not http.is_closed


async def test_token_provider_clients_work_without_credentials(
    fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    app = fake.register_official_account()
    async with OfficialAccountClient(app.appid, app.secret, http_client=http) as first:
        await first.kf_accounts.list()
    token = fake.issued_tokens()[0]
    provider = StaticTokenProvider(token)
    async with OfficialAccountClient(token_provider=provider, http_client=http) as client:
        assert await client.kf_accounts.list() == []
    assert fake.token_fetches == 1
