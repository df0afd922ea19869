"""The data wechat_kf returns: frozen attrs classes, built from WeChat's JSON by ``_serde``."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from .kf_messages import KfMessage

__all__ = [
    "AccessToken",
    "BatchResult",
    "Customer",
    "CustomerBatch",
    "InviteStatus",
    "KfAccount",
    "KfSession",
    "MediaFile",
    "MessageRecord",
    "OnlineKfAccount",
    "SentMessage",
    "ServiceState",
    "Servicer",
    "ServicerResult",
    "ServicerStatus",
    "SessionState",
    "SyncPage",
    "WaitingCase",
    "WaitingCases",
]


@attrs.frozen(repr=False)
class AccessToken:
    """An access token, when it expires and, optionally, when to replace it (unix seconds); without
    ``refresh_at`` it is replaced ``margin`` seconds before expiry. Its repr never shows the
    value."""

    value: str
    expires_at: float
    refresh_at: float | None = None

    def is_fresh(self, now: float, margin: float = 300.0) -> bool:
        """True until ``refresh_at``, or without one while ``margin`` seconds away from expiry."""
        if self.refresh_at is not None:
            return now < self.refresh_at
        return now < self.expires_at - margin

    def __repr__(self) -> str:
        hidden = f"<redacted {len(self.value)} chars>"
        return (
            f"AccessToken(value={hidden}, expires_at={self.expires_at!r}, "
            f"refresh_at={self.refresh_at!r})"
        )


class InviteStatus(str, enum.Enum):
    """Where an invitation to bind a WeChat user to a kf account stands."""

    WAITING = "waiting"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ServicerStatus(enum.IntEnum):
    """Whether a WeCom servicer is taking conversations."""

    SERVING = 0
    STOPPED = 1


@attrs.frozen
class KfAccount:
    """One Official Account customer-service account as ``getkflist`` reports it; every field but
    ``kf_account`` may be absent and is then None. ``kf_id`` is always a str, whatever type the
    server sent, and ``invite_expire_time`` an aware UTC datetime."""

    kf_account: str
    kf_nick: str | None = None
    kf_id: str | None = None
    kf_headimgurl: str | None = None
    kf_wx: str | None = None
    invite_wx: str | None = None
    invite_expire_time: datetime | None = None
    invite_status: InviteStatus | None = None
    kf_openid: str | None = None


@attrs.frozen
class OnlineKfAccount:
    """One kf account that is online, as ``getonlinekflist`` reports it: ``status`` as sent
    (0 offline, 1 web online; legacy bitmask 1 PC, 2 mobile) and ``accepted_case``, the number of
    conversations being served."""

    kf_account: str
    status: int | None = None
    kf_id: str | None = None
    accepted_case: int | None = None


@attrs.frozen
class Servicer:
    """One WeCom servicer entry of a kf account: a member (``userid``, with ``status`` and
    ``stop_type`` when the app manages the account) or a whole department (``department_id``)."""

    userid: str | None = None
    department_id: int | None = None
    status: ServicerStatus | None = None
    stop_type: int | None = None


@attrs.frozen
class ServicerResult:
    """The outcome for one id of a servicer add or delete: WeChat's per-item errcode and errmsg,
    or ``errcode=None`` when the server did not report that id at all. ``already`` is True when
    WeChat said the id was already in the state asked for (add: errmsg "ignored"; delete: errcode
    95014, not a servicer), which is a success that keeps WeChat's errcode and errmsg."""

    userid: str | None = None
    department_id: int | None = None
    errcode: int | None = None
    errmsg: str = ""
    already: bool = False

    @property
    def ok(self) -> bool:
        """True when WeChat reported errcode 0 for this id, or that it was already in the state
        asked for (``already``)."""
        return self.errcode == 0 or self.already


def _as_list(items: Iterable[ServicerResult]) -> list[ServicerResult]:
    return list(items)


@attrs.frozen
class BatchResult:
    """The outcome of a servicer add or delete: one item per distinct id that was processed, in
    input order (userids, then department ids). WeCom compares userids without regard to case, so
    a userid that differs from an earlier one only by case is the same member: it was not sent
    again, and ``case_duplicates`` maps it to the spelling that was (``{"ALICE": "alice"}``)."""

    items: list[ServicerResult] = attrs.field(factory=list, converter=_as_list)
    case_duplicates: dict[str, str] = attrs.field(factory=dict, kw_only=True)

    @property
    def ok(self) -> bool:
        """True when every item succeeded."""
        return all(item.ok for item in self.items)

    @property
    def succeeded(self) -> list[ServicerResult]:
        """The items WeChat accepted."""
        return [item for item in self.items if item.ok]

    @property
    def failed(self) -> list[ServicerResult]:
        """The items WeChat refused or did not report."""
        return [item for item in self.items if not item.ok]


@attrs.frozen
class WeComKfAccount:
    """A WeCom 微信客服 account as ``kf/account/list`` reports it: its ``open_kfid``, ``name``,
    ``avatar`` URL and whether this app may manage it (``manage_privilege``); a field WeChat left
    out is ``None``."""

    open_kfid: str
    name: str | None = None
    avatar: str | None = None
    manage_privilege: bool | None = None


@attrs.frozen
class RequestOutcome:
    """What one request of a servicer batch did, handed to ``on_request`` as soon as it is known,
    so that a job can journal exactly which ids went through before a crash, a timeout or
    Ctrl-C: the ``action`` ("add" or "delete"), the ``open_kfid``, the request's ``userids`` and
    ``department_ids``, and either WeChat's ``results`` for them or the ``error`` that left them
    all unprocessed (``results`` is then empty)."""

    action: str
    open_kfid: str
    userids: list[str]
    department_ids: list[int]
    results: list[ServicerResult]
    error: Exception | None = None


def _optional_batch(value: BatchResult | None) -> bool:
    return value is None or value.ok


@attrs.frozen
class SyncResult:
    """The plan of a ``servicers.sync`` and what was done: the members and departments to add and
    to remove (in the order given, then as WeChat listed them), whether it was a ``dry_run``, and
    the ``added`` / ``removed`` batch results (``None`` when nothing was sent that way). Members
    are compared as WeCom compares them, without regard to case: a wanted "Alice" is the servicer
    "alice", and a wanted id that repeats an earlier one in another case is in
    ``case_duplicates``."""

    open_kfid: str
    to_add: list[str] = attrs.Factory(list)
    to_remove: list[str] = attrs.Factory(list)
    departments_to_add: list[int] = attrs.Factory(list)
    departments_to_remove: list[int] = attrs.Factory(list)
    dry_run: bool = False
    added: BatchResult | None = None
    removed: BatchResult | None = None
    #: Wanted userids that differ from an earlier one only by case: ``{dropped: kept}``.
    case_duplicates: dict[str, str] = attrs.Factory(dict)

    @property
    def changes(self) -> int:
        """How many ids the plan adds or removes."""
        return (
            len(self.to_add)
            + len(self.to_remove)
            + len(self.departments_to_add)
            + len(self.departments_to_remove)
        )

    @property
    def ok(self) -> bool:
        """True when every id sent was accepted (always True for a dry run)."""
        return _optional_batch(self.added) and _optional_batch(self.removed)


class SessionState(enum.IntEnum):
    """Who is serving a 微信客服 customer: nobody yet (UNTREATED 0), the API or its smart assistant
    (ASSISTANT 1), the waiting pool (WAITING 2), a human servicer (HUMAN 3), or nobody any more
    (ENDED 4). The API may send only in states 0 and 1."""

    UNTREATED = 0
    ASSISTANT = 1
    WAITING = 2
    HUMAN = 3
    ENDED = 4


@attrs.frozen
class ServiceState:
    """Where a customer's 微信客服 session stands (``sessions.get``): its ``state`` (a
    :class:`SessionState`, or the plain number for a state WeChat adds later) and, in state 3,
    the ``servicer_userid`` serving it."""

    state: SessionState | int
    servicer_userid: str | None = None


@attrs.frozen
class Customer:
    """A 微信客服 customer as ``customer/batchget`` reports them: ``external_userid``,
    ``nickname``, ``avatar`` URL, ``gender`` (0 unknown, 1 male, 2 female), ``unionid`` (only with
    a bound open platform) and, when asked for, ``enter_session_context`` (``scene``,
    ``scene_param``, ``wechat_channels``) as sent; a field WeChat left out is None."""

    external_userid: str
    nickname: str | None = None
    avatar: str | None = None
    gender: int | None = None
    unionid: str | None = None
    enter_session_context: dict[str, Any] | None = None


@attrs.frozen
class CustomerBatch:
    """The answer of ``customers.get`` over any number of ids: ``customers`` in input order, and
    the ids WeChat reported as ``invalid`` (unknown, or silent for 48 hours), also in input order.
    Every distinct id asked for is in exactly one of the two."""

    customers: list[Customer] = attrs.Factory(list)
    invalid: list[str] = attrs.Factory(list)


@attrs.frozen(repr=False)
class MediaFile:
    """A file downloaded with ``media.download``: its ``content``, the ``content_type`` WeChat
    gave and the ``filename`` of its Content-Disposition (None without one). Its repr shows the
    size, not the bytes."""

    content: bytes
    content_type: str | None = None
    filename: str | None = None

    def __repr__(self) -> str:
        return (
            f"MediaFile(<{len(self.content)} bytes>, content_type={self.content_type!r}, "
            f"filename={self.filename!r})"
        )


@attrs.frozen
class KfSession:
    """An Official Account customer-service session: which ``kf_account`` serves which
    ``openid``, since ``created_at`` (aware UTC)."""

    kf_account: str
    openid: str
    created_at: datetime | None = None


@attrs.frozen
class WaitingCase:
    """A user waiting for an Official Account kf account: ``openid`` and the time of their latest
    message (``latest_time``, aware UTC)."""

    openid: str
    latest_time: datetime | None = None


@attrs.frozen
class WaitingCases:
    """The waiting queue of an Official Account: how many wait (``count``) and the oldest of them
    (``cases``, at most 100, as WeChat lists them)."""

    count: int
    cases: list[WaitingCase] = attrs.Factory(list)


def _none_if_empty(value: str | None) -> str | None:
    return value or None


@attrs.frozen
class MessageRecord:
    """One line of an Official Account's customer-service chat record: the user's ``openid``,
    ``opercode`` (2002 the kf account sent it, 2003 it received it), the ``text``, its ``time``
    (aware UTC) and the ``worker`` (kf account) involved, None when there was none."""

    openid: str
    opercode: int
    text: str
    time: datetime
    # WeChat sends "" for a record no kf account was part of.
    worker: str | None = attrs.field(default=None, converter=_none_if_empty)


@attrs.frozen
class SyncPage:
    """One page of ``messages.sync``: the ``messages`` in order (typed; an unknown kind is an
    ``UnknownMessage`` / ``UnknownEvent``), the ``next_cursor`` to pull from next, and whether
    WeChat has more (``has_more``: pull again, even after an empty page)."""

    messages: list[KfMessage]
    next_cursor: str | None
    has_more: bool


@attrs.frozen
class SentMessage:
    """A message WeCom accepted: its ``msgid`` (the caller's, or the one the SDK chose). Accepted
    is not delivered: a refusal comes later as a ``msg_send_fail`` event naming this msgid."""

    msgid: str
