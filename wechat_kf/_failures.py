"""The failures of wechat_kf that are not an errcode: the base class every error shares, and the
network, answer, batch, ticket, store, callback and closed-client errors. ``wechat_kf.errors``
re-exports all of them beside the errcode tree; import them from there."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from .models import BatchResult, CustomerBatch, SyncResult

__all__ = [
    "BatchError",
    "CallbackError",
    "ClientClosedError",
    "InvalidResponseError",
    "PlatformTicketError",
    "SyncError",
    "TokenStoreError",
    "TransportError",
    "WeChatError",
]


class WeChatError(Exception):
    """The base of every error wechat_kf raises on purpose; catch it to catch them all. Every one
    pickles with all its attributes, so it crosses process pools and task queues intact."""

    def __reduce__(self) -> tuple[Any, ...]:
        # The default rebuilds from self.args, which our keyword-only constructors do not accept.
        return (_restore, (type(self), self.args, dict(self.__dict__)))


def _restore(cls: type[WeChatError], args: tuple[Any, ...], state: dict[str, Any]) -> WeChatError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class TransportError(WeChatError):
    """The network or the HTTP layer failed after the retries; the httpx error, if any, is the
    ``__cause__``. ``maybe_applied`` is True when the request may have reached WeChat (so a
    non-idempotent call may have taken effect); ``status_code`` is the last HTTP status, if any;
    ``msgid`` is the id a WeCom message send carried (look for it in ``msg_send_fail`` events or
    the conversation before sending again), else None."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        maybe_applied: bool,
        status_code: int | None = None,
        msgid: str | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.maybe_applied = maybe_applied
        self.status_code = status_code
        self.msgid = msgid
        super().__init__(message)

    def __str__(self) -> str:
        where = f" path={self.path}" if self.path else ""
        status = f" status={self.status_code}" if self.status_code is not None else ""
        msgid = f" msgid={self.msgid}" if self.msgid else ""
        return f"{self.message}{where}{status}{msgid} maybe_applied={self.maybe_applied}"


class InvalidResponseError(WeChatError):
    """WeChat's answer could not be understood: not JSON, or not the documented shape."""

    def __init__(
        self, message: str, *, path: str | None = None, status_code: int | None = None
    ) -> None:
        self.message = message
        self.path = path
        self.status_code = status_code
        super().__init__(message)

    def __str__(self) -> str:
        where = f" path={self.path}" if self.path else ""
        status = f" status={self.status_code}" if self.status_code is not None else ""
        return f"{self.message}{where}{status}"


if TYPE_CHECKING:
    # A default (PEP 696), so that a plain ``BatchError`` annotation means the servicers' kind;
    # only type checkers read it, so the runtime needs no typing_extensions.
    from typing_extensions import TypeVar as _TypeVar

    ResultT = _TypeVar("ResultT", BatchResult, CustomerBatch, default=BatchResult)
else:
    ResultT = TypeVar("ResultT")


class BatchError(WeChatError, Generic[ResultT]):
    """Some requests of a batched call failed as a whole, or the caller's callback raised:
    ``result`` holds the outcome of every id that was processed (a ``BatchResult`` for servicers,
    a ``CustomerBatch`` for ``customers.get``), ``unprocessed_userids`` /
    ``unprocessed_department_ids`` every id that was not (in input order; the external_userids
    for customers), and ``errors`` what stopped them (WeChatErrors, and whatever the callback
    raised, which is also the ``__cause__``). Processed plus unprocessed is exactly the input."""

    def __init__(
        self,
        result: ResultT,
        unprocessed_userids: Sequence[str],
        unprocessed_department_ids: Sequence[int],
        errors: Sequence[Exception],
    ) -> None:
        self.result: ResultT = result
        self.unprocessed_userids: list[str] = list(unprocessed_userids)
        self.unprocessed_department_ids: list[int] = list(unprocessed_department_ids)
        self.errors: list[Exception] = list(errors)
        super().__init__(str(self))

    def __str__(self) -> str:
        unprocessed = len(self.unprocessed_userids) + len(self.unprocessed_department_ids)
        result: object = self.result
        items = getattr(result, "items", None)
        if items is not None:
            processed = len(items)
        else:
            processed = len(getattr(result, "customers", ())) + len(getattr(result, "invalid", ()))
        first = f"; first error: {self.errors[0]}" if self.errors else ""
        return (
            f"{unprocessed} of {unprocessed + processed} ids unprocessed after "
            f"{len(self.errors)} failed request(s){first}"
        )


class SyncError(WeChatError):
    """A ``servicers.sync`` was applied in part: ``result`` is the plan with the ``added`` and
    ``removed`` outcomes of every id that was processed, the ``unprocessed_*`` lists name every
    id of the plan that was not (so adds plus removes, processed or not, are exactly the plan),
    and ``errors`` says why. Running the same sync again finishes the job."""

    def __init__(
        self,
        result: SyncResult,
        *,
        unprocessed_to_add: Sequence[str] = (),
        unprocessed_to_remove: Sequence[str] = (),
        unprocessed_departments_to_add: Sequence[int] = (),
        unprocessed_departments_to_remove: Sequence[int] = (),
        errors: Sequence[Exception] = (),
    ) -> None:
        self.result = result
        self.unprocessed_to_add: list[str] = list(unprocessed_to_add)
        self.unprocessed_to_remove: list[str] = list(unprocessed_to_remove)
        self.unprocessed_departments_to_add: list[int] = list(unprocessed_departments_to_add)
        self.unprocessed_departments_to_remove: list[int] = list(unprocessed_departments_to_remove)
        self.errors: list[Exception] = list(errors)
        super().__init__(str(self))

    def __str__(self) -> str:
        r = self.result
        adds = len(r.to_add) + len(r.departments_to_add)
        removes = len(r.to_remove) + len(r.departments_to_remove)
        added = len(r.added.items) if r.added else 0
        removed = len(r.removed.items) if r.removed else 0
        first = f"; first error: {self.errors[0]}" if self.errors else ""
        return (
            f"sync of {r.open_kfid} applied in part: {added} of {adds} additions and {removed} "
            f"of {removes} removals processed{first}"
        )


class PlatformTicketError(WeChatError):
    """A third-party platform cannot fetch a token yet: its source returned no
    ``component_verify_ticket`` or ``suite_ticket`` (WeChat pushes one to the platform's callback
    every 10 minutes), no authorizer refresh token or no permanent code. Nothing was sent."""


class TokenStoreError(WeChatError):
    """A shared token store could not be used, and fetching a token without it would be unsafe."""


class CallbackError(WeChatError, ValueError):
    """A push to the callback URL was refused, and nothing of it is returned. ``reason`` says which
    check failed: ``"signature"``, ``"timestamp"`` (outside the allowed age, past or future),
    ``"decrypt"`` (not base64, bad padding, a length past the end, not UTF-8), ``"receive_id"``
    (sealed for another corpid, suite or app) or ``"xml"`` (too large, malformed, a DTD or an
    entity). Its text never holds the token, the EncodingAESKey or any decrypted byte."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(reason, message)

    def __str__(self) -> str:
        return f"callback refused ({self.reason}): {self.message}"


class ClientClosedError(WeChatError, RuntimeError):
    """The client was closed; open a new one."""


# Pickles and reprs name the public module, where users import these from.
for _cls in (
    WeChatError,
    TransportError,
    InvalidResponseError,
    BatchError,
    SyncError,
    PlatformTicketError,
    TokenStoreError,
    CallbackError,
    ClientClosedError,
):
    _cls.__module__ = "wechat_kf.errors"
