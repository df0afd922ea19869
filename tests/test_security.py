"""No token or secret in exception text, reprs or errmsg echoes; TLS and redirect rules."""

from __future__ import annotations

import httpx
import pytest

from tests._scripted import SECRET, Scripted
from wechat_kf import (
    AccessTokenError,
    BatchError,
    CredentialError,
    OfficialAccountClient,
    TransportError,
    WeChatError,
    WeComClient,
)
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio


def assert_hidden(secrets: list[str], *objects: object) -> None:
    for obj in objects:
        texts = [str(obj), repr(obj)]
        if isinstance(obj, BaseException):
            texts += [str(a) for a in obj.args]
        for secret in secrets:
            for text in texts:
                assert secret not in text, f"{secret!r} leaked into {text!r}"


async def test_errors_from_every_kind_of_failure_hide_tokens_and_secrets(
    fake: FakeWeChat, http: httpx.AsyncClient, corp: tuple[str, str, str]
) -> None:
    app = fake.register_official_account()
    caught: list[WeChatError] = []
    async with OfficialAccountClient(app.appid, "wrong", http_client=http) as bad:
        with pytest.raises(CredentialError) as info:
            await bad.kf_accounts.list()
        caught.append(info.value)
    async with OfficialAccountClient(app.appid, app.secret, http_client=http) as oa:
        await oa.kf_accounts.list()
        fake.faults.revoke_every = 1
        with pytest.raises(AccessTokenError) as token_info:
            await oa.kf_accounts.list()
        caught.append(token_info.value)
        fake.faults.revoke_every = None
        fake.faults.http_error_rate = 1.0
        with pytest.raises(TransportError) as transport_info:
            await oa.kf_accounts.list()
        caught.append(transport_info.value)
        fake.faults.http_error_rate = 0.0
    async with WeComClient(corp[0], corp[1], http_client=http) as wc:
        with pytest.raises(BatchError) as batch_info:
            await wc.servicers.add("wkunknown", ["u1"])
        caught.append(batch_info.value)
        assert_hidden([corp[1], *fake.issued_tokens()], wc, wc.servicers, wc.token_provider)
    secrets = [app.secret, corp[1], *fake.issued_tokens()]
    assert_hidden(secrets, *caught, oa, oa.kf_accounts, oa.token_provider, *fake.calls)


async def test_a_token_echoed_in_errmsg_is_redacted(secret_watch: set[str]) -> None:
    secret_watch.add(SECRET)
    token = f"tok-1-{SECRET}"
    script = Scripted({"errcode": 48001, "errmsg": f"api unauthorized, token {token} rid: r1"})
    async with OfficialAccountClient("wx", SECRET, http_client=script.client()) as client:
        with pytest.raises(WeChatError) as info:
            await client.kf_accounts.list()
    assert_hidden([token, SECRET], info.value)
    assert info.value.rid == "r1"  # type: ignore[attr-defined]


async def test_tls_verification_stays_on_in_the_owned_client() -> None:
    client = OfficialAccountClient("wx", "secret")
    pool = client._transport._http._transport._pool  # type: ignore[attr-defined]
    assert pool._ssl_context.verify_mode.name == "CERT_REQUIRED"
    await client.aclose()
