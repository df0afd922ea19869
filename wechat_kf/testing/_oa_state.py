"""The state of Official Account customer-service conversations the fake keeps: customers and
their 48-h windows, kf sessions, message records and what the API sent. The rules are in
``_official_sessions``."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["OaConversation", "OaCustomer", "OaRecord", "OaSentMessage", "OaSession"]


@attrs.define
class OaCustomer:
    """A user who wrote to the Official Account: when they last wrote (the 48-h window and the
    30-s typing rule), how many messages the window has used, whether they wait for a kf, and
    until when a typing indicator shows to them."""

    openid: str
    last_message_at: float
    window_sends: int = 0
    waiting: bool = True
    typing_until: float = 0.0


@attrs.frozen
class OaSession:
    """A customer served by a kf account since ``createtime`` (unix seconds)."""

    openid: str
    kf_account: str
    createtime: int


@attrs.frozen
class OaRecord:
    """One message record (``msgrecord/getmsglist``): its internal id (ids skip, so the next
    page's msgid can only be read from the answer), the customer, 2002 sent by a kf or 2003
    received, the text, when (unix seconds) and the kf account (``worker``)."""

    id: int
    openid: str
    opercode: int
    text: str
    time: int
    worker: str


@attrs.frozen
class OaSentMessage:
    """A message ``message/custom/send`` accepted: the customer, msgtype, content as sent, the
    kf account it went out as (None when unnamed) and when (the fake's clock)."""

    touser: str
    msgtype: str
    content: dict[str, Any]
    kf_account: str | None
    time: float


@attrs.define
class OaConversation:
    """Everything an Official Account's conversations hold: customers by openid, sessions by
    openid, records in id order, the record page cursors handed out, and the sends."""

    customers: dict[str, OaCustomer] = attrs.Factory(dict)
    sessions: dict[str, OaSession] = attrs.Factory(dict)
    records: list[OaRecord] = attrs.Factory(list)
    record_cursors: set[int] = attrs.Factory(set)
    next_record_id: int = 1
    sent: list[OaSentMessage] = attrs.Factory(list)

    def record(self, openid: str, opercode: int, text: str, time: float, worker: str) -> None:
        """Keep a message record under the next id; ids skip 2 to 4 places, so that no client
        can compute where the next page starts."""
        record = OaRecord(self.next_record_id, openid, opercode, text, int(time), worker)
        self.records.append(record)
        self.next_record_id += 2 + len(self.records) % 3
