"""The state FakeWeChat keeps: apps, tokens, kf accounts, corps, servicers."""

from __future__ import annotations

import attrs


@attrs.define
class OfficialAccountApp:
    """A registered Official Account: its credentials and its customer-service accounts."""

    appid: str
    secret: str
    wechat_id: str = "gh_fake"
    customer_service_enabled: bool = True
    kf_accounts: dict[str, KfAccountState] = attrs.Factory(dict)
    stable_token: str | None = None
    last_forced_refresh: float | None = None


@attrs.define
class KfAccountState:
    """One kf account as the fake stores it."""

    kf_account: str
    kf_nick: str
    kf_id: int
    kf_headimgurl: str | None = None
    kf_wx: str | None = None
    invite_wx: str | None = None
    invite_expire_time: int | None = None
    invite_status: str | None = None
    online_status: int = 0
    accepted_case: int = 0


@attrs.define
class WeComApp:
    """A registered WeCom app (corpid + secret) of a corp."""

    corpid: str
    secret: str
    token: str | None = None


@attrs.define
class Corp:
    """A WeCom corp: its members, departments and 微信客服 accounts."""

    corpid: str
    members: set[str] = attrs.Factory(set)
    departments: set[int] = attrs.Factory(set)
    kf_accounts: dict[str, KfAccountOfCorp] = attrs.Factory(dict)
    _folded: dict[str, str] = attrs.field(factory=dict, init=False, repr=False)
    _indexed: int = attrs.field(default=-1, init=False, repr=False)

    def member(self, userid: str) -> str | None:
        """The member ``userid`` names, as the corp spells it (WeCom ignores case in userids),
        or None."""
        if userid in self.members:
            return userid
        if self._indexed != len(self.members):  # members were added since: index again
            self._folded = {m.lower(): m for m in self.members}
            self._indexed = len(self.members)
        return self._folded.get(userid.lower())


@attrs.define
class KfAccountOfCorp:
    """A WeCom 微信客服 account: its name, avatar, whether the app may manage it, its servicers
    (userid -> status) and servicer departments."""

    open_kfid: str
    name: str
    avatar: str = ""
    manage_privilege: bool = True
    servicers: dict[str, int] = attrs.Factory(dict)
    departments: list[int] = attrs.Factory(list)


@attrs.define
class TokenState:
    """An issued token: whose it is, and until when it is accepted."""

    platform: str
    owner: str
    expires_at: float
    kind: str = ""


@attrs.define
class OpenPlatformState:
    """An Official Account open platform: its credentials, the latest verify ticket (and until
    when it is accepted), and each authorizer's current refresh token."""

    component_appid: str
    component_appsecret: str
    ticket: str | None = None
    ticket_expires_at: float = 0.0
    refresh_tokens: dict[str, str] = attrs.Factory(dict)


@attrs.define
class ServiceProviderState:
    """A WeCom service provider's suite: its credentials, the latest suite ticket, and each
    authorised corp's permanent code."""

    suite_id: str
    suite_secret: str
    ticket: str | None = None
    ticket_expires_at: float = 0.0
    permanent_codes: dict[str, str] = attrs.Factory(dict)
