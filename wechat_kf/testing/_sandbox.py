"""A FakeWeChat seeded with demo data, for ``wechat-kf --sandbox``, the demo and fake-server."""

from __future__ import annotations

import attrs

from ._fake import FakeWeChat

SANDBOX_APPID = "wxsandbox00000001"
SANDBOX_OA_SECRET = "sandbox-oa-secret-0123456789abcdef"
SANDBOX_WECHAT_ID = "gh_sandbox"
SANDBOX_CORPID = "wwsandbox00000001"
SANDBOX_WECOM_SECRET = "sandbox-wecom-secret-0123456789abcdef"
SANDBOX_OPEN_KFID = "wkSANDBOX0000000000000000000001"
SANDBOX_MEMBERS = 1000
SANDBOX_DEPARTMENTS = 10
SANDBOX_COMPONENT_APPID = "wxsandboxcomponent1"
SANDBOX_COMPONENT_SECRET = "sandbox-component-secret-0123456789"
SANDBOX_VERIFY_TICKET = "ticket@@@sandbox-verify-ticket"
SANDBOX_AUTHORIZER_REFRESH_TOKEN = "refreshtoken@@@sandbox-authorizer"
SANDBOX_SUITE_ID = "wwsandboxsuite0001"
SANDBOX_SUITE_SECRET = "sandbox-suite-secret-0123456789abcdef"
SANDBOX_SUITE_TICKET = "sandbox-suite-ticket-0123456789"
SANDBOX_PERMANENT_CODE = "sandbox-permanent-code-0123456789"
#: Customers who wrote to the sandbox's 微信客服 account (the last is with a human servicer).
SANDBOX_CUSTOMERS = ("wmSANDBOXCUSTOMER01", "wmSANDBOXCUSTOMER02", "wmSANDBOXCUSTOMER03")
#: Users waiting for the Official Account's kf accounts (``support@gh_sandbox`` is online).
SANDBOX_OA_USERS = ("oSANDBOXUSER0001", "oSANDBOXUSER0002")
#: The sandbox's tickets stay valid this long (a real one lasts 12 hours).
_TICKET_LIFETIME = 10 * 365 * 86400.0


@attrs.frozen
class Sandbox:
    """A seeded fake (``fake``) and the credentials and ids it accepts, as
    :func:`sandbox` made them: fixed values, so tests and other services can name them."""

    fake: FakeWeChat
    appid: str = SANDBOX_APPID
    oa_secret: str = SANDBOX_OA_SECRET
    wechat_id: str = SANDBOX_WECHAT_ID
    corpid: str = SANDBOX_CORPID
    wecom_secret: str = SANDBOX_WECOM_SECRET
    open_kfid: str = SANDBOX_OPEN_KFID
    customers: tuple[str, ...] = SANDBOX_CUSTOMERS
    oa_users: tuple[str, ...] = SANDBOX_OA_USERS
    component_appid: str = SANDBOX_COMPONENT_APPID
    component_appsecret: str = SANDBOX_COMPONENT_SECRET
    verify_ticket: str = SANDBOX_VERIFY_TICKET
    authorizer_refresh_token: str = SANDBOX_AUTHORIZER_REFRESH_TOKEN
    suite_id: str = SANDBOX_SUITE_ID
    suite_secret: str = SANDBOX_SUITE_SECRET
    suite_ticket: str = SANDBOX_SUITE_TICKET
    permanent_code: str = SANDBOX_PERMANENT_CODE
    #: How many members the corp was seeded with (``user0001``..): ``sandbox(members=...)``.
    seeded_members: int = SANDBOX_MEMBERS

    def member(self, number: int) -> str:
        """The userid of the corp's seeded member ``number``, from 1: ``user0001``, ..."""
        return _member(number)

    @property
    def members(self) -> list[str]:
        """The userids that are members of the sandbox corp."""
        return sorted(self.fake.corps[self.corpid].members)


def sandbox(*, seed: int = 0, members: int = SANDBOX_MEMBERS) -> Sandbox:
    """A FakeWeChat (its faults drawn from ``seed``) with one Official Account (WeChat ID
    ``gh_sandbox``, two kf accounts, ``support`` online, two users waiting), one WeCom corp
    (``members`` members ``user0001``, ``user0002``..., 1,000 by default; departments 1..10;
    one 微信客服 account that three customers wrote to, the third now with ``user0001``), an open
    platform the Official Account authorised and a service provider the corp installed (fixed
    tickets, refresh token and permanent code). The credentials and ids are the
    :class:`Sandbox`'s attributes, the same on every call."""
    if not isinstance(members, int) or isinstance(members, bool):
        raise TypeError(f"members must be an int, not {type(members).__name__}")
    if members < 1:
        raise ValueError(f"members must be at least 1 (user0001 serves a customer), not {members}")
    fake = FakeWeChat(seed=seed)
    fake.register_official_account(SANDBOX_APPID, SANDBOX_OA_SECRET, wechat_id=SANDBOX_WECHAT_ID)
    for prefix, nick in (("support", "客服小王"), ("sales", "销售小李")):
        fake.add_kf_account(SANDBOX_APPID, f"{prefix}@{SANDBOX_WECHAT_ID}", nick)
    fake.register_wecom_app(SANDBOX_CORPID, SANDBOX_WECOM_SECRET)
    fake.add_members(SANDBOX_CORPID, [_member(i) for i in range(1, members + 1)])
    fake.add_departments(SANDBOX_CORPID, range(1, SANDBOX_DEPARTMENTS + 1))
    fake.create_kf_account(SANDBOX_CORPID, "沙盒客服", open_kfid=SANDBOX_OPEN_KFID)
    first, second, third = SANDBOX_CUSTOMERS
    fake.customer_enters(SANDBOX_OPEN_KFID, first, scene="sandbox")
    fake.customer_says(SANDBOX_OPEN_KFID, first, "你好，我想查一下订单")
    fake.customer_says(SANDBOX_OPEN_KFID, second, "在吗")
    fake.customer_says(SANDBOX_OPEN_KFID, third, "我要退货，请转人工")
    fake.set_session_state(SANDBOX_OPEN_KFID, third, 3, servicer_userid="user0001")
    fake.set_online(SANDBOX_APPID, f"support@{SANDBOX_WECHAT_ID}")
    for openid, text in zip(SANDBOX_OA_USERS, ("你好", "有人吗"), strict=True):
        fake.oa_customer_says(SANDBOX_APPID, openid, text)
    platform = fake.register_open_platform(SANDBOX_COMPONENT_APPID, SANDBOX_COMPONENT_SECRET)
    platform.ticket = SANDBOX_VERIFY_TICKET
    platform.ticket_expires_at = fake.now() + _TICKET_LIFETIME
    platform.refresh_tokens[SANDBOX_APPID] = SANDBOX_AUTHORIZER_REFRESH_TOKEN
    suite = fake.register_service_provider(SANDBOX_SUITE_ID, SANDBOX_SUITE_SECRET)
    suite.ticket = SANDBOX_SUITE_TICKET
    suite.ticket_expires_at = fake.now() + _TICKET_LIFETIME
    suite.permanent_codes[SANDBOX_CORPID] = SANDBOX_PERMANENT_CODE
    return Sandbox(fake, seeded_members=members)


def _member(number: int) -> str:
    return f"user{number:04d}"
