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


@attrs.frozen
class Sandbox:
    """A seeded fake and the credentials and ids it accepts."""

    fake: FakeWeChat
    appid: str = SANDBOX_APPID
    oa_secret: str = SANDBOX_OA_SECRET
    wechat_id: str = SANDBOX_WECHAT_ID
    corpid: str = SANDBOX_CORPID
    wecom_secret: str = SANDBOX_WECOM_SECRET
    open_kfid: str = SANDBOX_OPEN_KFID

    @property
    def members(self) -> list[str]:
        """The userids that are members of the sandbox corp."""
        return sorted(self.fake.corps[self.corpid].members)


def sandbox(*, seed: int = 0) -> Sandbox:
    """A FakeWeChat with one Official Account (WeChat ID ``gh_sandbox``, two kf accounts) and one
    WeCom corp (members ``user0001``..``user1000``, departments 1..10, one 微信客服 account)."""
    fake = FakeWeChat(seed=seed)
    fake.register_official_account(SANDBOX_APPID, SANDBOX_OA_SECRET, wechat_id=SANDBOX_WECHAT_ID)
    for prefix, nick in (("support", "客服小王"), ("sales", "销售小李")):
        fake.add_kf_account(SANDBOX_APPID, f"{prefix}@{SANDBOX_WECHAT_ID}", nick)
    fake.register_wecom_app(SANDBOX_CORPID, SANDBOX_WECOM_SECRET)
    fake.add_members(SANDBOX_CORPID, [f"user{i:04d}" for i in range(1, SANDBOX_MEMBERS + 1)])
    fake.add_departments(SANDBOX_CORPID, range(1, SANDBOX_DEPARTMENTS + 1))
    fake.create_kf_account(SANDBOX_CORPID, "沙盒客服", open_kfid=SANDBOX_OPEN_KFID)
    return Sandbox(fake)
