"""What the FastAPI and aiohttp examples' callback routes do, framework aside: WeChat's URL check
(GET) and its encrypted pushes (POST), answered at once.

- ``/callbacks/wecom``: the corp app's callback (receive id: the corpid). A ``kf_msg_or_event``
  push says an open_kfid has new messages; it is handed to the app's inbox (``inbox.notify``: a
  store write), which pulls and answers in the background, never inside the request (WeChat
  wants an answer within 5 s and delivers again otherwise).
- ``/callbacks/open-platform``: an open platform's callback (receive id: the component appid).
  Its ``component_verify_ticket``, pushed every 10 minutes, is saved in the platform's token
  store, where every process's platform reads it; its authorization changes are logged.

Each route acts only on its own kinds of push: anything else, though it opens with the route's
key, is answered "success" (WeChat must not deliver it again) and ignored. A push is read to its
end with a cap (``read_push``), over which it is answered 413 before more is read.

Configuration from the environment: WECOM_CALLBACK_TOKEN / WECOM_CALLBACK_AES_KEY for the corp's
callback; WECHAT_COMPONENT_APPID / WECHAT_COMPONENT_SECRET and WECHAT_COMPONENT_CALLBACK_TOKEN /
WECHAT_COMPONENT_CALLBACK_AES_KEY for an open platform. A route whose variables are missing
answers 404.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import AsyncIterable, Mapping

import attrs

from wechat_kf import CallbackError, ClientClosedError, Inbox, OpenPlatform
from wechat_kf.callbacks import AuthChange, CallbackCrypto, ComponentVerifyTicket, KfMsgOrEvent

__all__ = ["MAX_PUSH_BYTES", "Callbacks", "TextAnswer", "read_push"]

logger = logging.getLogger("examples.callbacks")

#: What a callback route answers: status and a plain-text body.
TextAnswer = tuple[int, str]
#: WeChat's pushes are small: anything larger is refused before it is read whole.
MAX_PUSH_BYTES = 64 * 1024
#: What each route acts on; any other push is acknowledged and ignored.
ROUTE_PUSHES: dict[str, tuple[type, ...]] = {
    "wecom": (KfMsgOrEvent,),
    "open-platform": (ComponentVerifyTicket, AuthChange),
}
#: The open platform's authorization changes (the WeCom service provider's are not its).
OPEN_PLATFORM_AUTH_CHANGES = frozenset({"authorized", "updateauthorized", "unauthorized"})


async def read_push(chunks: AsyncIterable[bytes], content_length: str | int | None) -> bytes | None:
    """A push's body read to its end (however many TCP segments it came in), or None when it is
    over :data:`MAX_PUSH_BYTES` (answer 413): a declared Content-Length over the cap is refused
    before anything is read, and the body is counted as it comes, so that a longer one (or one
    without a length) stops being read at the cap."""
    if content_length is not None:
        declared = str(content_length).strip()
        if declared.isdigit() and int(declared) > MAX_PUSH_BYTES:
            return None
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > MAX_PUSH_BYTES:
            return None
    return bytes(body)


@attrs.define
class Callbacks:
    """The callback routes' state: the crypto of each configured callback, the open platform
    whose tickets arrive, the inbox the kf events go to, and the most recent kf events (for a
    status page)."""

    wecom: CallbackCrypto | None = None
    open_platform: CallbackCrypto | None = None
    platform: OpenPlatform | None = None
    inbox: Inbox | None = None
    kf_events: deque[KfMsgOrEvent] = attrs.Factory(lambda: deque(maxlen=100))

    @classmethod
    def from_env(
        cls,
        corpid: str | None,
        platform: OpenPlatform | None = None,
        inbox: Inbox | None = None,
    ) -> Callbacks:
        """The callbacks the environment configures (see the module's docstring); the kf
        events go to ``inbox``."""
        env = os.environ
        callbacks = cls(platform=platform, inbox=inbox)
        if corpid and env.get("WECOM_CALLBACK_TOKEN") and env.get("WECOM_CALLBACK_AES_KEY"):
            callbacks.wecom = CallbackCrypto(
                env["WECOM_CALLBACK_TOKEN"], env["WECOM_CALLBACK_AES_KEY"], receive_id=corpid
            )
        token = env.get("WECHAT_COMPONENT_CALLBACK_TOKEN")
        key = env.get("WECHAT_COMPONENT_CALLBACK_AES_KEY")
        if platform is not None and token and key:
            appid = platform.component.component_appid
            callbacks.open_platform = CallbackCrypto(token, key, receive_id=appid)
        return callbacks

    def check(self, route: str, query: Mapping[str, str]) -> TextAnswer:
        """WeChat's URL check (GET): the decrypted echo as the body, or 403 when the signature,
        time or key does not hold."""
        crypto = self._crypto(route)
        if crypto is None:
            return 404, "no such callback"
        try:
            echo = crypto.verify_url(
                query.get("msg_signature", ""),
                query.get("timestamp", ""),
                query.get("nonce", ""),
                query.get("echostr", ""),
            )
        except CallbackError as exc:
            logger.warning("URL check refused on %s: %s", route, exc.reason)
            return 403, "refused"
        return 200, echo

    async def receive(self, route: str, query: Mapping[str, str], body: bytes) -> TextAnswer:
        """One push (POST): checked and decrypted, then acted on quickly (a ticket saved, a kf
        event handed to the inbox) and answered "success"; a push that fails a check is 403, so
        a forged one is never acted on (WeChat's own are then delivered again). Only the route's
        own kinds of push are acted on (``/callbacks/wecom``: kf_msg_or_event of this corp;
        ``/callbacks/open-platform``: component_verify_ticket and authorization changes): any
        other is answered "success", so that WeChat does not deliver it again, and ignored
        with an INFO log. While the app shuts down (its inbox closed) a kf event is answered
        503: WeChat delivers it again, to a process that is still up."""
        crypto = self._crypto(route)
        if crypto is None:
            return 404, "no such callback"
        if len(body) > MAX_PUSH_BYTES:
            return 413, "too large"
        try:
            event = crypto.decrypt(
                body,
                msg_signature=query.get("msg_signature", ""),
                timestamp=query.get("timestamp", ""),
                nonce=query.get("nonce", ""),
            )
        except CallbackError as exc:
            logger.warning("push refused on %s: %s", route, exc.reason)
            return 403, "refused"
        if not self._belongs(route, event):
            # It opened with this route's key, yet it is not this route's kind of push (a
            # ticket on the corp's route): acting on it would trust the wrong callback.
            logger.info("callback %s on %s ignored: not this route's", type(event).__name__, route)
        elif isinstance(event, KfMsgOrEvent):
            # Pull later, outside this request: the inbox records the news (with its token for
            # the pulls of the next 10 minutes) and pulls in the background.
            self.kf_events.append(event)
            logger.info("kf_msg_or_event for %s", event.open_kfid)
            if self.inbox is not None:
                try:
                    await self.inbox.notify(event)
                except ClientClosedError:
                    return 503, "shutting down"
        elif isinstance(event, ComponentVerifyTicket) and self.platform is not None:
            await self.platform.save_verify_ticket(event)
            logger.info("component_verify_ticket saved for %s", event.component_appid)
        elif isinstance(event, AuthChange):
            logger.info("authorization change on %s: %s", route, event.info_type)
        return 200, "success"

    def _belongs(self, route: str, event: object) -> bool:
        if not isinstance(event, ROUTE_PUSHES.get(route, ())):
            return False
        if isinstance(event, KfMsgOrEvent):
            # This corp's (the inbox pulls this corp's accounts, never another's).
            return self.wecom is not None and event.corpid in ("", self.wecom.receive_id)
        if isinstance(event, AuthChange):
            return event.info_type in OPEN_PLATFORM_AUTH_CHANGES
        if isinstance(event, ComponentVerifyTicket):
            # The platform configured here, not another one whose ticket this is.
            return (
                self.platform is not None
                and event.component_appid == self.platform.component.component_appid
            )
        return True

    def _crypto(self, route: str) -> CallbackCrypto | None:
        return {"wecom": self.wecom, "open-platform": self.open_platform}.get(route)
