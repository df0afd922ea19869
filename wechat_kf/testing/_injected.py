"""Errcodes a test chooses, beside the random faults: a whole call answered with an errcode on a
chosen path (:class:`ErrcodeFault`), and chosen ids of a servicer batch answered with an item
errcode (:class:`ServicerIdFault`), each with the errmsg WeChat writes for it. FakeWeChat's
``inject_errcode`` and ``fail_servicer_ids`` make them; ``fake.faults`` keeps them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from ..errors import ERRCODES

__all__ = ["SERVICER_PATHS", "ErrcodeFault", "ServicerIdFault", "errmsg_of"]

#: What WeChat writes in errmsg for the errcodes a test most often injects (the rid is added
#: when answering). An errcode not here takes its meaning from the SDK's registry.
_ERRMSGS: dict[int, str] = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40003: "invalid userid",
    40014: "invalid access_token",
    42001: "access_token expired",
    45009: "api freq out of limit",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    45015: "response out of time limit or subscription is canceled",
    45033: "api concurrent out of limit",
    45047: "out of response count limit",
    48001: "api unauthorized",
    60003: "department not found",
    60011: "no privilege to access/modify contact/party/agent",
    60111: "userid not found",
    95000: "invalid open_kfid",
    95004: "open_kfid not found",
    95005: "servicer limit reached",
    95013: "the session has ended",
    95014: "user is not a servicer",
    95018: "send msg session status invalid",
    95019: "servicer stopped or suspended",
}
#: Where the Official Account words an errcode differently from WeCom.
_OA_ERRMSGS: dict[int, str] = {45009: "reach max api daily quota limit"}

#: The servicer batch calls, by the name ``fail_servicer_ids(on=...)`` takes.
SERVICER_PATHS: dict[str, str] = {
    "add": "/cgi-bin/kf/servicer/add",
    "delete": "/cgi-bin/kf/servicer/del",
}


def errmsg_of(errcode: int, platform: str = "wecom") -> str:
    """The errmsg WeChat writes for ``errcode`` on ``platform`` ("oa", "wecom" or "token"),
    without its rid."""
    if platform == "oa" and errcode in _OA_ERRMSGS:
        return _OA_ERRMSGS[errcode]
    if errcode in _ERRMSGS:
        return _ERRMSGS[errcode]
    info = ERRCODES.get(errcode)
    return info.description if info else "unknown error"


def _errcode(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"errcode must be an int, not {type(value).__name__}")
    if value == 0:
        raise ValueError("errcode 0 is a success: inject a failure")


def _times(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be an int or None, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1 (None: every time), not {value}")


def _after(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"after must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"after must be 0 or more, not {value}")


def _rate(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"rate must be a number, not {type(value).__name__}")
    if not 0 < value <= 1:
        raise ValueError(f"rate must be above 0 and at most 1, not {value}")


def _path(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"path must be a str or None, not {type(value).__name__}")
    if not value.startswith("/") or "?" in value or any(c.isspace() for c in value):
        raise ValueError(f"path must be a path such as '/cgi-bin/kf/send_msg', not {value!r}")


def _errmsg(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"errmsg must be a str or None, not {type(value).__name__}")


@attrs.define
class ErrcodeFault:
    """A whole call answered with ``errcode`` (and ``errmsg``, WeChat's own when None, then a
    rid) instead of being applied: on ``path`` (None: every business path, never a token
    endpoint), once its token was accepted; the first ``after`` matching calls go through,
    then each matching call is answered with it, with probability ``rate`` (drawn from the
    fake's seeded generator only when below 1), until it has answered ``times`` calls (None:
    no end). ``hits`` counts the calls it answered; ``spent`` says it will answer no more."""

    errcode: int = attrs.field(validator=_errcode)
    path: str | None = attrs.field(default=None, validator=_path)
    times: int | None = attrs.field(default=None, validator=_times)
    rate: float = attrs.field(default=1.0, validator=_rate)
    after: int = attrs.field(default=0, validator=_after)
    errmsg: str | None = attrs.field(default=None, validator=_errmsg)
    hits: int = attrs.field(default=0, init=False)
    _matched: int = attrs.field(default=0, init=False, repr=False)

    @property
    def spent(self) -> bool:
        """True once it answered ``times`` calls: it answers no more."""
        return self.times is not None and self.hits >= self.times

    def text(self, platform: str) -> str:
        """The errmsg it answers on ``platform`` ("oa" or "wecom"), without the rid."""
        return self.errmsg if self.errmsg is not None else errmsg_of(self.errcode, platform)

    def fires(self, path: str, platform: str, draw: Callable[[], float]) -> bool:
        """Whether this call (``path`` of ``platform``) is answered with the errcode; counts it."""
        on_path = platform != "token" if self.path is None else path == self.path
        if not on_path or self.spent:
            return False
        self._matched += 1
        if self._matched <= self.after or (self.rate < 1 and draw() >= self.rate):
            return False
        self.hits += 1
        return True


def _userids(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, (str, bytes)):
        raise TypeError("userids must be an iterable of str, not a bare str")
    ids = frozenset(value)
    for userid in ids:
        if not isinstance(userid, str) or not userid:
            raise ValueError(f"userids must be non-empty str, not {userid!r}")
    return ids


def _department_ids(value: Iterable[int]) -> frozenset[int]:
    ids = frozenset(value)
    for department in ids:
        if not isinstance(department, int) or isinstance(department, bool) or department < 1:
            raise ValueError(f"department_ids must be positive ints, not {department!r}")
    return ids


def _on(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and value not in SERVICER_PATHS:
        raise ValueError(f"on must be 'add', 'delete' or None (both), not {value!r}")


@attrs.define
class ServicerIdFault:
    """Chosen ids of servicer batches answered with ``errcode`` in their ``result_list`` item
    (and ``errmsg``, WeChat's own when None, then a rid) and not applied, while the call and
    the other ids succeed: ``userids`` (as sent, exactly) and ``department_ids``, on ``on``
    ("add", "delete", or None for both), each id ``times`` times (None: every time). ``hits``
    counts the items it answered."""

    errcode: int = attrs.field(validator=_errcode)
    userids: frozenset[str] = attrs.field(default=frozenset(), converter=_userids)
    department_ids: frozenset[int] = attrs.field(default=frozenset(), converter=_department_ids)
    on: str | None = attrs.field(default=None, validator=_on)
    times: int | None = attrs.field(default=None, validator=_times)
    errmsg: str | None = attrs.field(default=None, validator=_errmsg)
    hits: int = attrs.field(default=0, init=False)
    _counts: dict[str | int, int] = attrs.field(factory=dict, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.userids and not self.department_ids:
            raise ValueError("name at least one userid or department_id to fail")

    def text(self) -> str:
        """The errmsg of its items, without the rid."""
        return self.errmsg if self.errmsg is not None else errmsg_of(self.errcode)

    def fires(self, path: str, key: object) -> bool:
        """Whether the item of ``key`` (a userid or a department id) in this call to ``path``
        is answered with the errcode; counts it."""
        if self.on is not None and SERVICER_PATHS[self.on] != path:
            return False
        if isinstance(key, str):
            if key not in self.userids:
                return False
        elif isinstance(key, int) and not isinstance(key, bool):
            if key not in self.department_ids:
                return False
        else:
            return False
        count = self._counts.get(key, 0)
        if self.times is not None and count >= self.times:
            return False
        self._counts[key] = count + 1
        self.hits += 1
        return True
