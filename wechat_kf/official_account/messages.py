"""OfficialAccountMessages: customer-service messages an Official Account sends to a user, and
the typing indicator."""

from __future__ import annotations

from typing import Any, get_args

from .. import _validate
from .._transport import Transport
from ..contents import Content

__all__ = ["OfficialAccountMessages"]

# The content classes, read from the alias so that a content added there is accepted here too;
# which of them an Official Account takes is each content's own answer (official_account_json).
_CONTENT_TYPES: tuple[type, ...] = get_args(Content)


class OfficialAccountMessages:
    """The customer-service messages of one Official Account (``client.messages``): ``send``
    a content to a user inside their 48-hour window, optionally as a named kf account, and
    show or hide the typing indicator. Arguments are checked before a request is sent (a
    content an Official Account cannot take is a ``TypeError``); a refusal by the window raises
    ``MessageWindowError`` (45015 past 48 hours, 45047 over the budget)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def send(self, openid: str, content: Content, *, kf_account: str | None = None) -> None:
        """Send ``content`` (a :class:`~wechat_kf.contents.Text`, ``Image``, ``Voice``,
        ``Video``, ``Menu`` of ``MenuClick`` items or ``Miniprogram``) to the user ``openid``,
        as ``kf_account`` when given (``customservice``). Never sent twice: once the request may
        have reached WeChat, a failure raises ``TransportError(maybe_applied=True)``, since a
        repeat could deliver the message twice."""
        payload: dict[str, Any] = {"touser": _validate.token_like("openid", openid)}
        if not isinstance(content, _CONTENT_TYPES):
            raise TypeError(
                "content must be a wechat_kf content (Text, Image, Voice, Video, Menu or "
                f"Miniprogram for an Official Account), not {type(content).__name__}"
            )
        payload.update(content.official_account_json())
        if kf_account is not None:
            payload["customservice"] = {"kf_account": _validate.kf_account(kf_account)}
        await self._transport.request("POST", "/cgi-bin/message/custom/send", json=payload)

    async def typing(self, openid: str, typing: bool = True) -> None:
        """Show the user ``openid`` that a reply is being typed (``typing=False`` hides it).
        WeChat shows it for 15 seconds and only within 30 seconds of the user's last message
        (else 45080); it is retried on a lost answer, since showing it twice is harmless."""
        openid = _validate.token_like("openid", openid)
        if not isinstance(typing, bool):
            raise TypeError(f"typing must be a bool, not {type(typing).__name__}")
        payload = {"touser": openid, "command": "Typing" if typing else "CancelTyping"}
        await self._transport.request(
            "POST", "/cgi-bin/message/custom/typing", json=payload, idempotent=True
        )
