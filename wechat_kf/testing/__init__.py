"""Test helpers: :class:`FakeWeChat`, a stateful in-memory fake of the WeChat APIs wechat_kf calls,
for our tests and yours; :func:`sandbox`, one seeded with fixed credentials, ids and
conversations (what ``wechat-kf fake-server`` serves); :func:`instant_retries`.

    fake = FakeWeChat()
    oa = fake.register_official_account()
    async with OfficialAccountClient(
        oa.appid, oa.secret, http_client=httpx.AsyncClient(transport=fake.transport)
    ) as client:
        await client.kf_accounts.add("alice@gh_fake", nickname="Alice")
    assert "alice@gh_fake" in fake.kf_accounts(oa.appid)
"""

from __future__ import annotations

from ._fake import Call, FakeWeChat, Faults
from ._injected import ErrcodeFault, ServicerIdFault
from ._kf_state import CustomerState, WeComSentMessage
from ._oa_state import OaRecord, OaSentMessage, OaSession
from ._pushes import CallbackDelivery
from ._retries import instant_retries
from ._sandbox import Sandbox, sandbox
from ._state import KfAccountState, OfficialAccountApp, WeComApp
from ._wecom_messages import DUPLICATE_MSGID, INVALID_EVENT_CODE

__all__ = [
    "DUPLICATE_MSGID",
    "INVALID_EVENT_CODE",
    "Call",
    "CallbackDelivery",
    "CustomerState",
    "ErrcodeFault",
    "FakeWeChat",
    "Faults",
    "KfAccountState",
    "OaRecord",
    "OaSentMessage",
    "OaSession",
    "OfficialAccountApp",
    "Sandbox",
    "ServicerIdFault",
    "WeComApp",
    "WeComSentMessage",
    "instant_retries",
    "sandbox",
]
