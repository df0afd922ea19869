"""Sessions: who is serving a 微信客服 customer (``service_state/get``), and handing the
customer on (``service_state/trans``)."""

from __future__ import annotations

from .. import _validate
from .._serde import as_int
from .._transport import Transport
from ..errors import InvalidResponseError
from ..models import ServiceState, SessionState

__all__ = ["Sessions"]

_GET = "/cgi-bin/kf/service_state/get"
_TRANSFER = "/cgi-bin/kf/service_state/trans"


class Sessions:
    """The session states of 微信客服 customers (``client.sessions``): read who is serving a
    customer of a kf account, and move the customer to the assistant, the waiting pool, a human
    servicer or the end. Which moves WeChat allows is WeChat's to say (its refusal raises); the
    SDK checks only the arguments, before sending."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def get(self, open_kfid: str, external_userid: str) -> ServiceState:
        """Where the session of ``external_userid`` with ``open_kfid`` stands: its ``state`` (a
        :class:`SessionState`, or the plain number of a state WeChat adds later) and, when a
        human serves it, the ``servicer_userid``. A read, so retried after a lost answer."""
        payload = {
            "open_kfid": _validate.token_like("open_kfid", open_kfid),
            "external_userid": _validate.token_like("external_userid", external_userid),
        }
        body = await self._transport.request("POST", _GET, json=payload, idempotent=True)
        number = as_int(body.get("service_state"))
        if number is None:
            raise InvalidResponseError("service_state is missing or not an integer", path=_GET)
        state: SessionState | int
        try:
            state = SessionState(number)
        except ValueError:
            state = number
        servicer = body.get("servicer_userid")
        if servicer is not None and not isinstance(servicer, str):
            raise InvalidResponseError("servicer_userid is not a string", path=_GET)
        return ServiceState(state, servicer or None)

    async def transfer(
        self,
        open_kfid: str,
        external_userid: str,
        state: SessionState | int,
        *,
        servicer_userid: str | None = None,
    ) -> str | None:
        """Move the session of ``external_userid`` with ``open_kfid`` to ``state`` (a
        :class:`SessionState` or its number 0..4) and return the ``msg_code`` WeChat gives when
        the change lets the API send one message with ``messages.send_on_event`` (None when it
        gives none). ``servicer_userid`` is required for ``SessionState.HUMAN`` and refused for
        any other state (WeChat takes it only there), both with ``ValueError`` before sending.
        Never sent twice: after a lost answer it raises ``TransportError(maybe_applied=True)``
        (read the state with :meth:`get` before trying again). A change WeChat does not allow
        from the current state is its errcode to raise, not a check of the SDK."""
        payload: dict[str, object] = {
            "open_kfid": _validate.token_like("open_kfid", open_kfid),
            "external_userid": _validate.token_like("external_userid", external_userid),
            "service_state": _validate.session_state(state),
        }
        if payload["service_state"] == SessionState.HUMAN:
            if servicer_userid is None:
                raise ValueError("servicer_userid is required to hand a session to a human")
            payload["servicer_userid"] = _validate.userid("servicer_userid", servicer_userid)
        elif servicer_userid is not None:
            raise ValueError("servicer_userid goes only with state HUMAN (3)")
        body = await self._transport.request("POST", _TRANSFER, json=payload, idempotent=False)
        msg_code = body.get("msg_code")
        if isinstance(msg_code, int) and not isinstance(msg_code, bool):
            msg_code = str(msg_code)  # WeChat's ids come as numbers now and then
        if msg_code is not None and not isinstance(msg_code, str):
            # Said loudly: the change did apply, so the caller must not simply try again.
            raise InvalidResponseError(
                "the state changed (errcode 0), but msg_code is not a string", path=_TRANSFER
            )
        return msg_code or None
