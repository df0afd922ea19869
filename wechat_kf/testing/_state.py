"""The state FakeWeChat keeps: apps, tokens, kf accounts, corps, servicers, platforms, and the
:class:`World` that holds them all with the fake's clock. The endpoint modules take the world
(never FakeWeChat itself), so the fake and its endpoints import one way."""

from __future__ import annotations

import random
import secrets
import time
from typing import Any

import attrs

from ._faults import Faults
from ._kf_state import (
    CODE_KINDS,
    SYNC_TOKEN_LIFETIME,
    CustomerState,
    EventCode,
    KfLog,
    LoggedMessage,
    Media,
    Session,
    SyncToken,
    WeComSentMessage,
)
from ._oa_state import OaConversation
from ._pushes import Outbox, kf_msg_or_event_xml


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
    #: Its customers, kf sessions, message records and sends.
    conversation: OaConversation = attrs.Factory(OaConversation)


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
    """A WeCom corp: its members, departments and 微信客服 accounts; whether it is verified (an
    unverified corp may have 10 accounts); the media it stored, its customers, the codes for
    ``send_msg_on_event``, the sync tokens its pushes carried and its recent token-less pulls."""

    corpid: str
    members: set[str] = attrs.Factory(set)
    departments: set[int] = attrs.Factory(set)
    kf_accounts: dict[str, KfAccountOfCorp] = attrs.Factory(dict)
    verified: bool = True
    media: dict[str, Media] = attrs.Factory(dict)
    customers: dict[str, CustomerState] = attrs.Factory(dict)
    codes: dict[str, EventCode] = attrs.Factory(dict)
    sync_tokens: dict[str, SyncToken] = attrs.Factory(dict)
    tokenless_pulls: list[float] = attrs.Factory(list)
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
    """A WeCom 微信客服 account: its name, avatar (and the media it was made from), whether the
    app may manage it, its servicers (userid -> status) and servicer departments, its
    customers' sessions and its message log."""

    open_kfid: str
    name: str
    avatar: str = ""
    manage_privilege: bool = True
    servicers: dict[str, int] = attrs.Factory(dict)
    departments: list[int] = attrs.Factory(list)
    media_id: str = ""
    sessions: dict[str, Session] = attrs.Factory(dict)
    log: KfLog = attrs.Factory(KfLog)


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


#: Servicers per 微信客服 account (2,000 by the current docs; 500 by an older one).
MAX_SERVICERS = 2000


@attrs.define
class World:
    """Everything the fake knows and its clock: what the endpoints read and change. Tokens live
    ``token_ttl`` seconds; ``servicer_cap`` servicers fit in a 微信客服 account;
    ``rotate_refresh_tokens`` hands out a new authorizer refresh token with every authorizer
    token, as WeChat may; ``tokenless_pulls_per_minute`` sync_msg pulls without a token are
    answered per corp and minute (then 45009); ``empty_page_rate`` is how often a sync_msg page
    comes back empty with has_more 1 (drawn from the seeded generator only when above 0);
    ``outbox`` holds the callback pushes; ``faults`` what is injected."""

    random: random.Random
    token_ttl: int = 7200
    servicer_cap: int = MAX_SERVICERS
    rotate_refresh_tokens: bool = False
    tokenless_pulls_per_minute: int = 10
    empty_page_rate: float = 0.0
    #: Every token issued and still known, with whose it is and until when.
    tokens: dict[str, TokenState] = attrs.Factory(dict)
    official_accounts: dict[str, OfficialAccountApp] = attrs.Factory(dict)
    wecom_apps: dict[tuple[str, str], WeComApp] = attrs.Factory(dict)
    corps: dict[str, Corp] = attrs.Factory(dict)
    open_platforms: dict[str, OpenPlatformState] = attrs.Factory(dict)
    service_providers: dict[str, ServiceProviderState] = attrs.Factory(dict)
    offset: float = 0.0
    next_kf_id: int = 1001
    #: What the WeCom API sent, in order.
    kf_sent: list[WeComSentMessage] = attrs.Factory(list)
    outbox: Outbox = attrs.Factory(Outbox)
    faults: Faults = attrs.Factory(Faults)

    def now(self) -> float:
        """The fake's clock: wall time plus what was advanced."""
        return time.time() + self.offset

    def issue(self, platform: str, owner: str) -> str:
        """A new token of ``platform`` for ``owner``, valid for ``token_ttl`` seconds."""
        token = secrets.token_urlsafe(96)
        self.tokens[token] = TokenState(platform, owner, self.now() + self.token_ttl)
        return token

    def token_body(self, token: str) -> dict[str, Any]:
        """The answer of a token endpoint handing out ``token``."""
        remaining = int(self.tokens[token].expires_at - self.now())
        return {"access_token": token, "expires_in": remaining}

    def error_body(self, errcode: int, text: str) -> dict[str, Any]:
        """An errcode and an errmsg ending in a rid, as WeChat writes them."""
        rid = f"{self.random.getrandbits(32):08x}-{self.random.getrandbits(32):08x}"
        return {"errcode": errcode, "errmsg": f"{text} rid: {rid}"}

    def add_kf_account(self, appid: str, kf_account: str, nickname: str) -> KfAccountState:
        """A new kf account of an Official Account, with the next kf_id."""
        state = KfAccountState(kf_account, nickname, self.next_kf_id)
        self.next_kf_id += 1
        self.official_accounts[appid].kf_accounts[kf_account] = state
        return state

    def corp(self, corpid: str) -> Corp:
        """The corp ``corpid``, created if new."""
        return self.corps.setdefault(corpid, Corp(corpid))

    def revoke_tokens(self) -> None:
        """Invalidate every token issued so far."""
        self.tokens.clear()
        for app in self.official_accounts.values():
            app.stable_token = None
        for wecom in self.wecom_apps.values():
            wecom.token = None

    def kf_account(self, open_kfid: object) -> tuple[Corp, KfAccountOfCorp] | None:
        """The corp and 微信客服 account ``open_kfid`` names, or None."""
        for corp in self.corps.values():
            kf = corp.kf_accounts.get(open_kfid) if isinstance(open_kfid, str) else None
            if kf is not None:
                return corp, kf
        return None

    def log_kf_message(self, corp: Corp, kf: KfAccountOfCorp, item: dict[str, Any]) -> None:
        """Append ``item`` to the account's log (sync_msg hands it out) and announce it: a new
        sync token, pushed in a kf_msg_or_event when the corp has a callback."""
        log = kf.log
        log.messages.append(LoggedMessage(log.next_seq, float(item["send_time"]), item))
        log.next_seq += 1
        now = self.now()
        corp.sync_tokens = {k: t for k, t in corp.sync_tokens.items() if t.expires_at > now}
        token = "ENC" + secrets.token_urlsafe(30)
        corp.sync_tokens[token] = SyncToken(token, kf.open_kfid, now + SYNC_TOKEN_LIFETIME)
        xml = kf_msg_or_event_xml(corp.corpid, kf.open_kfid, token, int(now))
        self.outbox.post(("corp", corp.corpid), "kf_msg_or_event", xml)

    def issue_code(self, corp: Corp, kind: str, open_kfid: str, external_userid: str) -> str:
        """A new code for ``send_msg_on_event`` of ``kind`` (welcome, pool, human, end)."""
        now = self.now()
        corp.codes = {k: c for k, c in corp.codes.items() if c.expires_at > now and not c.used}
        code = secrets.token_urlsafe(24)
        lifetime = CODE_KINDS[kind][0]
        corp.codes[code] = EventCode(code, kind, open_kfid, external_userid, now + lifetime)
        return code
