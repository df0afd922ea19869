"""FakeWeChat's seeding of apps, corps, members, kf accounts and platforms: a mixin, so that
the fake's own module keeps to serving and routing."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from . import _platform_api
from ._pushes import suite_ticket_xml, verify_ticket_xml
from ._state import (
    Corp,
    KfAccountOfCorp,
    KfAccountState,
    OfficialAccountApp,
    OpenPlatformState,
    ServiceProviderState,
    WeComApp,
    World,
)

__all__ = ["Seeding"]

#: WeChat pushes the platforms' tickets this often.
TICKET_INTERVAL = 600.0


class Seeding:
    """The seeding methods of FakeWeChat (which sets ``world``)."""

    world: World

    def register_official_account(
        self,
        appid: str = "wxfakeappid0001",
        secret: str | None = None,
        *,
        wechat_id: str = "gh_fake",
        customer_service_enabled: bool = True,
    ) -> OfficialAccountApp:
        """Register an Official Account that the token endpoints accept; returns its state."""
        app = OfficialAccountApp(
            appid=appid,
            secret=secret or secrets.token_hex(16),
            wechat_id=wechat_id,
            customer_service_enabled=customer_service_enabled,
        )
        self.world.official_accounts[appid] = app
        return app

    def register_wecom_app(
        self, corpid: str = "wwfakecorp0001", secret: str | None = None
    ) -> WeComApp:
        """Register a WeCom app (a corpid + secret pair); creates the corp if it is new."""
        app = WeComApp(corpid=corpid, secret=secret or secrets.token_urlsafe(32))
        self.world.wecom_apps[(corpid, app.secret)] = app
        self.world.corps.setdefault(corpid, Corp(corpid))
        return app

    def add_members(self, corpid: str, userids: Iterable[str]) -> None:
        """Make ``userids`` members of the corp (only members can become servicers)."""
        self.world.corp(corpid).members.update(userids)

    def add_departments(self, corpid: str, department_ids: Iterable[int]) -> None:
        """Create departments in the corp."""
        self.world.corp(corpid).departments.update(department_ids)

    def create_kf_account(
        self,
        corpid: str,
        name: str = "客服",
        *,
        open_kfid: str | None = None,
        avatar: str = "",
        manage_privilege: bool = True,
    ) -> str:
        """Create a 微信客服 account in the corp (as ``kf/account/list`` will list it: ``name``,
        ``avatar`` URL, whether this app may manage it) and return its open_kfid."""
        open_kfid = open_kfid or "wk" + secrets.token_hex(15)
        account = KfAccountOfCorp(open_kfid, name, avatar, manage_privilege)
        self.world.corp(corpid).kf_accounts[open_kfid] = account
        return open_kfid

    def add_servicers(
        self, open_kfid: str, userids: Iterable[str] = (), department_ids: Iterable[int] = ()
    ) -> None:
        """Seed servicers of a 微信客服 account directly, as if they had been added: the
        userids (made members of the corp if they are not) and the departments (created if
        new). Nothing is checked against WeChat's caps: seed what the test needs."""
        corp = next(c for c in self.world.corps.values() if open_kfid in c.kf_accounts)
        kf = corp.kf_accounts[open_kfid]
        for userid in userids:
            corp.members.add(userid)
            kf.servicers.setdefault(userid, 0)
        for department in department_ids:
            corp.departments.add(department)
            if department not in kf.departments:
                kf.departments.append(department)

    def register_open_platform(
        self, component_appid: str = "wxcomponent00001", component_appsecret: str | None = None
    ) -> OpenPlatformState:
        """Register an Official Account open platform (第三方平台); push it a verify ticket with
        :meth:`push_verify_ticket` before it can fetch its component token."""
        state = OpenPlatformState(component_appid, component_appsecret or secrets.token_hex(16))
        self.world.open_platforms[component_appid] = state
        return state

    def push_verify_ticket(self, component_appid: str) -> str:
        """What WeChat pushes to the platform's callback every 10 minutes: a new
        component_verify_ticket, accepted for 12 hours; returns it. With a callback set
        (:meth:`set_platform_callback`) the push is queued for it."""
        platform = self.world.open_platforms[component_appid]
        platform.ticket = "ticket@@@" + secrets.token_urlsafe(24)
        now = self.world.now()
        platform.ticket_expires_at = now + _platform_api.TICKET_LIFETIME
        xml = verify_ticket_xml(component_appid, platform.ticket, int(now))
        self.world.outbox.post(("component", component_appid), "component_verify_ticket", xml)
        return platform.ticket

    def authorize(self, component_appid: str, authorizer_appid: str) -> str:
        """An Official Account authorises the platform (registered here if new); returns its
        authorizer_refresh_token."""
        if authorizer_appid not in self.world.official_accounts:
            self.register_official_account(authorizer_appid)
        token = "refreshtoken@@@" + secrets.token_urlsafe(24)
        self.world.open_platforms[component_appid].refresh_tokens[authorizer_appid] = token
        return token

    def register_service_provider(
        self, suite_id: str = "wwsuite000000001", suite_secret: str | None = None
    ) -> ServiceProviderState:
        """Register a WeCom service provider's suite (第三方应用); push it a suite ticket with
        :meth:`push_suite_ticket` before it can fetch its suite token."""
        state = ServiceProviderState(suite_id, suite_secret or secrets.token_urlsafe(32))
        self.world.service_providers[suite_id] = state
        return state

    def push_suite_ticket(self, suite_id: str) -> str:
        """A new suite_ticket, as WeChat pushes every 10 minutes; returns it. With a callback set
        (:meth:`set_platform_callback`) the push is queued for it."""
        suite = self.world.service_providers[suite_id]
        suite.ticket = secrets.token_urlsafe(32)
        now = self.world.now()
        suite.ticket_expires_at = now + _platform_api.TICKET_LIFETIME
        self.world.outbox.post(
            ("suite", suite_id), "suite_ticket", suite_ticket_xml(suite_id, suite.ticket, int(now))
        )
        return suite.ticket

    def authorize_corp(self, suite_id: str, corpid: str) -> str:
        """A corp installs the suite (the corp is created here if new); returns its
        permanent_code."""
        self.world.corp(corpid)
        code = secrets.token_urlsafe(32)
        self.world.service_providers[suite_id].permanent_codes[corpid] = code
        return code

    def add_kf_account(self, appid: str, kf_account: str, nickname: str) -> KfAccountState:
        """Seed a kf account of an Official Account directly, as if it had been added."""
        return self.world.add_kf_account(appid, kf_account, nickname)

    def accept_invite(self, appid: str, kf_account: str) -> None:
        """The invited WeChat user accepts: the kf account becomes bound to them."""
        account = self.world.official_accounts[appid].kf_accounts[kf_account]
        account.kf_wx, account.invite_wx = account.invite_wx, None
        account.invite_status = account.invite_expire_time = None

    def set_online(
        self, appid: str, kf_account: str, status: int = 1, accepted_case: int = 0
    ) -> None:
        """Mark a kf account online (status 1) or offline (0) with its number of sessions."""
        account = self.world.official_accounts[appid].kf_accounts[kf_account]
        account.online_status, account.accepted_case = status, accepted_case

    def _push_tickets_at_marks(self, before: float) -> None:
        """A new ticket for each platform with a callback when the clock went past a 10-minute
        mark since ``before`` (one, however many marks were passed: only the latest counts).
        Platforms without a callback keep theirs, so a test that seeded a ticket keeps it."""
        if self.world.now() // TICKET_INTERVAL == before // TICKET_INTERVAL:
            return
        for kind, platform_id in list(self.world.outbox.targets):
            if kind == "component":
                self.push_verify_ticket(platform_id)
            elif kind == "suite":
                self.push_suite_ticket(platform_id)
