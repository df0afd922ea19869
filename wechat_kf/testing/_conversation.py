"""FakeWeChat's conversations, seeded and inspected: customers who write to a 微信客服 account
or an Official Account, what the API sent them, their sessions. A mixin, so that the fake's own
module keeps to serving and routing."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from ._kf_state import CustomerState, Media, Session, WeComSentMessage
from ._oa_state import OaCustomer, OaRecord, OaSentMessage, OaSession
from ._state import Corp, KfAccountOfCorp, World
from ._wecom_kf import known_customer
from ._wecom_messages import new_msgid

__all__ = ["Conversation"]


class Conversation:
    """The conversation methods of FakeWeChat (which sets ``world``)."""

    world: World

    # -- WeCom 微信客服 --------------------------------------------------------------------------

    def customer_sends(
        self, open_kfid: str, external_userid: str, msgtype: str, payload: Mapping[str, Any]
    ) -> str:
        """The customer ``external_userid`` sends a message of ``msgtype`` (its object is
        ``payload``, e.g. ``"image", {"media_id": ...}``) to the 微信客服 account: it goes into
        the account's log (origin 3, a new msgid, sent now on the fake's clock), a session opens
        at state 0 if there was none or it had ended, the 48-h window and its 5-message budget
        start again, the customer is recorded (a made-up, deterministic profile), and a
        ``kf_msg_or_event`` push with a new sync token is queued when the corp has a callback.
        Returns the msgid."""
        corp, kf = self._kf_account(open_kfid)
        session = self._open_session(kf, external_userid)
        session.window_opened_at, session.window_sends = self.world.now(), 0
        known_customer(self.world, corp, external_userid)
        msgid = new_msgid()
        item = {
            "msgid": msgid,
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "send_time": int(self.world.now()),
            "origin": 3,
            "msgtype": msgtype,
            msgtype: dict(payload),
        }
        self.world.log_kf_message(corp, kf, item)
        return msgid

    def customer_says(self, open_kfid: str, external_userid: str, text: str = "你好") -> str:
        """The customer writes ``text`` to the 微信客服 account (:meth:`customer_sends` of a text
        message); returns its msgid."""
        return self.customer_sends(open_kfid, external_userid, "text", {"content": text})

    def customer_enters(
        self,
        open_kfid: str,
        external_userid: str,
        *,
        scene: str = "",
        scene_param: str | None = None,
    ) -> str:
        """The customer opens the 微信客服 account's chat (from a contact way of ``scene``, with
        the link's ``scene_param``): an ``enter_session`` event (origin 4) goes into the log
        with a new ``welcome_code`` (accepted by send_msg_on_event for 20 s, once), a session
        opens at state 0 if there was none or it had ended, the customer is recorded (entering
        counts as being seen for customer/batchget, but opens no 48-h window: only a message
        does) and a push is queued. Returns the welcome_code."""
        corp, kf = self._kf_account(open_kfid)
        self._open_session(kf, external_userid)
        known_customer(self.world, corp, external_userid)
        context = {"scene": scene, "scene_param": scene_param or "", "wechat_channels": {}}
        corp.customers[external_userid].enter_session_context = context
        code = self.world.issue_code(corp, "welcome", open_kfid, external_userid)
        event: dict[str, Any] = {
            "event_type": "enter_session",
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "scene": scene,
            "welcome_code": code,
        }
        if scene_param is not None:
            event["scene_param"] = scene_param
        self._log_event(corp, kf, event)
        return code

    def servicer_says(
        self, open_kfid: str, external_userid: str, servicer_userid: str, text: str
    ) -> str:
        """A servicer answers the customer from the WeCom app: a text message of origin 5 with
        ``servicer_userid`` goes into the log (sync_msg shows it; the API's own sends never
        come back) and a push is queued. Returns the msgid."""
        corp, kf = self._kf_account(open_kfid)
        msgid = new_msgid()
        item = {
            "msgid": msgid,
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "send_time": int(self.world.now()),
            "origin": 5,
            "servicer_userid": servicer_userid,
            "msgtype": "text",
            "text": {"content": text},
        }
        self.world.log_kf_message(corp, kf, item)
        return msgid

    def sent_messages(
        self, open_kfid: str | None = None, external_userid: str | None = None
    ) -> list[WeComSentMessage]:
        """What the WeCom API sent (``send_msg`` and ``send_msg_on_event``), in order, for one
        account and / or one customer when given: each a frozen :class:`WeComSentMessage` that says
        whether it reached the customer."""
        return [
            sent
            for sent in self.world.kf_sent
            if open_kfid in (None, sent.open_kfid) and external_userid in (None, sent.touser)
        ]

    @property
    def customers(self) -> dict[str, CustomerState]:
        """Every customer who wrote to or entered a 微信客服 account, of every corp, by
        external_userid."""
        return {k: c for corp in self.world.corps.values() for k, c in corp.customers.items()}

    def session_state(self, open_kfid: str, external_userid: str) -> int | None:
        """The state (0..4) of the customer's session with the account; None when there is
        none."""
        session = self._kf_account(open_kfid)[1].sessions.get(external_userid)
        return None if session is None else session.state

    def set_session_state(
        self,
        open_kfid: str,
        external_userid: str,
        state: int,
        servicer_userid: str | None = None,
    ) -> None:
        """Put the customer's session in ``state`` (with its servicer for state 3) directly, as
        if servicers had moved it, without WeCom's transition rules; the session is created if
        the customer has none."""
        session = self._kf_account(open_kfid)[1].sessions.setdefault(
            external_userid, Session(open_kfid, external_userid)
        )
        session.state, session.servicer_userid = state, servicer_userid

    def latest_sync_token(self, open_kfid: str) -> str | None:
        """The token of the latest push for the account (what its kf_msg_or_event carried, for
        sync_msg in the next 10 minutes), even when no callback is set; None before any."""
        corp, _ = self._kf_account(open_kfid)
        issued = [t for t in corp.sync_tokens.values() if t.open_kfid == open_kfid]
        return max(issued, key=lambda t: t.expires_at).token if issued else None

    def store_media(
        self,
        corpid: str,
        content: bytes = b"\x89PNG\r\n\x1a\n fake image",
        *,
        type: str = "image",
        filename: str = "image.png",
        content_type: str = "image/png",
    ) -> str:
        """Store a temporary media in the corp directly, as if uploaded now (it expires in 3
        days like an upload; no size rule is checked); returns its media_id."""
        media_id = "3" + secrets.token_urlsafe(40)
        media = Media(media_id, type, content, filename, content_type, self.world.now())
        self.world.corp(corpid).media[media_id] = media
        return media_id

    def set_corp_verified(self, corpid: str, verified: bool = True) -> None:
        """Mark the corp verified or not: an unverified corp may have 10 微信客服 accounts."""
        self.world.corp(corpid).verified = verified

    # -- Official Account ----------------------------------------------------------------------

    def oa_customer_says(self, appid: str, openid: str, text: str = "你好") -> None:
        """The user ``openid`` writes ``text`` to the Official Account: they become a known
        customer (custom/send and the session calls accept the openid), their 48-h window and
        its 5-message budget start again, the 30-s typing rule is met, a message record is kept
        (opercode 2003, with the serving kf account as worker) and, without a session, they wait
        for a kf (getwaitcase)."""
        conversation = self.world.official_accounts[appid].conversation
        now = self.world.now()
        customer = conversation.customers.get(openid)
        if customer is None:
            customer = conversation.customers[openid] = OaCustomer(openid, now)
        customer.last_message_at, customer.window_sends = now, 0
        session = conversation.sessions.get(openid)
        customer.waiting = session is None
        conversation.record(openid, 2003, text, now, session.kf_account if session else "")

    def oa_sent_messages(self, appid: str) -> list[OaSentMessage]:
        """What ``message/custom/send`` accepted for the Official Account, in order."""
        return list(self.world.official_accounts[appid].conversation.sent)

    def oa_session(self, appid: str, openid: str) -> OaSession | None:
        """The customer's kf session with the Official Account, or None."""
        return self.world.official_accounts[appid].conversation.sessions.get(openid)

    def oa_records(self, appid: str) -> list[OaRecord]:
        """Every message record of the Official Account, in id order."""
        return list(self.world.official_accounts[appid].conversation.records)

    # -- internals -------------------------------------------------------------------------------

    def _kf_account(self, open_kfid: str) -> tuple[Corp, KfAccountOfCorp]:
        found = self.world.kf_account(open_kfid)
        if found is None:
            raise ValueError(f"no 微信客服 account {open_kfid!r}: create_kf_account first")
        return found

    @staticmethod
    def _open_session(kf: KfAccountOfCorp, external_userid: str) -> Session:
        session = kf.sessions.get(external_userid)
        if session is None or session.state == 4:
            session = kf.sessions[external_userid] = Session(kf.open_kfid, external_userid)
        return session

    def _log_event(self, corp: Corp, kf: KfAccountOfCorp, event: dict[str, Any]) -> None:
        item = {
            "msgid": new_msgid(),
            "send_time": int(self.world.now()),
            "origin": 4,
            "msgtype": "event",
            "event": event,
        }
        self.world.log_kf_message(corp, kf, item)
