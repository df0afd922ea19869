"""The data wechat_kf returns: frozen attrs classes, built from WeChat's JSON by ``_serde``."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime

import attrs

__all__ = [
    "AccessToken",
    "BatchResult",
    "InviteStatus",
    "KfAccount",
    "OnlineKfAccount",
    "Servicer",
    "ServicerResult",
    "ServicerStatus",
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
    input order (userids, then department ids)."""

    items: list[ServicerResult] = attrs.field(factory=list, converter=_as_list)

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
