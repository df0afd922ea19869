"""Customers: what WeCom tells of 微信客服 customers (``customer/batchget``), for any number of
external_userids, batched like the servicer calls so that no id is lost."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import anyio
import attrs

from .. import _validate
from .._batching import Run, cut, is_fatal, run_batch
from .._serde import structure_list
from .._transport import Transport
from ..errors import BatchError, ClientClosedError, InvalidResponseError
from ..models import Customer, CustomerBatch

__all__ = ["CustomerRequestCallback", "Customers"]

_PATH = "/cgi-bin/kf/customer/batchget"
#: Called as ``on_request(external_userids, answer, error)`` when each request settles: the
#: ``CustomerBatch`` of its ids, or the error that left them all unprocessed.
CustomerRequestCallback = Callable[[list[str], "CustomerBatch | None", "Exception | None"], None]


@attrs.frozen
class _Answer:
    """What one request settled for its ids: the customers WeChat returned, and the rest of
    the request's ids, which are invalid."""

    found: dict[str, Customer]
    invalid: frozenset[str]

    def batch(self, chunk: list[str]) -> CustomerBatch:
        """This answer as the ``CustomerBatch`` of ``chunk``, in its order."""
        return CustomerBatch(
            [self.found[i] for i in chunk if i in self.found],
            [i for i in chunk if i in self.invalid],
        )


class Customers:
    """The 微信客服 customers of a WeCom corp (``client.customers``): nickname, avatar, gender,
    unionid and, when asked, how they entered the session. Any number of external_userids are
    cut into requests of 100 that run concurrently under the client's ``max_concurrency`` limit
    (shared with the servicer batches); every distinct id ends as a customer, as invalid, or in a
    ``BatchError`` as unprocessed."""

    def __init__(self, transport: Transport, limiter: anyio.CapacityLimiter) -> None:
        self._transport = transport
        self._limiter = limiter

    async def get(
        self,
        external_userids: Iterable[str],
        *,
        enter_session_context: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
        on_request: CustomerRequestCallback | None = None,
    ) -> CustomerBatch:
        """The customers ``external_userids`` name (an iterable of ids, duplicates dropped, the
        first kept; a bare str is a ``TypeError``, none at all a ``ValueError``), with their
        ``enter_session_context`` when asked for. ``customers`` and ``invalid`` keep the input
        order; ``invalid`` holds the ids WeChat listed as invalid (unknown, or silent for 48
        hours) and those it answered nothing about, so none is lost. A request that fails as a
        whole after its retries leaves its ids unprocessed, the others go on (a fatal failure,
        such as a refused permission, stops those not yet sent); then ``BatchError`` is raised
        with the ``CustomerBatch`` of every id processed as ``.result`` and the rest, in input
        order, as ``.unprocessed_userids``. A read, so every request is retried after a lost
        answer. ``on_progress(ids_done, ids_total)`` is called after each request and
        ``on_request(external_userids, answer, error)`` as each settles (its ``CustomerBatch``,
        or the error that left its ids unprocessed), so a job interrupted midway knows what it
        read; a callback that raises stops the batch as a fatal failure does."""
        if self._transport.closed:
            raise ClientClosedError("the client is closed")
        ids = _validate.identifiers("external_userid", external_userids)
        if not ids:
            raise ValueError("nothing to do: give at least one external_userid")
        if not isinstance(enter_session_context, bool):
            raise TypeError("enter_session_context must be a bool")
        flag = 1 if enter_session_context else 0

        async def send(chunk: list[str]) -> _Answer:
            payload = {"external_userid_list": chunk, "need_enter_session_context": flag}
            body = await self._transport.request("POST", _PATH, json=payload, idempotent=True)
            return _read(body, chunk)

        def done(chunk: list[str], answer: _Answer | None, error: Exception | None) -> None:
            assert on_request is not None
            on_request(list(chunk), None if answer is None else answer.batch(chunk), error)

        run = await run_batch(
            cut(ids),
            send,
            limiter=self._limiter,
            is_fatal=is_fatal,
            size=len,
            on_done=None if on_request is None else done,
            on_progress=on_progress,
        )
        return _finish(ids, run)


def _read(body: Mapping[str, Any], chunk: list[str]) -> _Answer:
    """The outcome of every id of ``chunk``, from the whole answer or not at all. A customer
    WeChat returns for an id not asked for in this request is ignored."""
    customers = structure_list(body, "customer_list", Customer, path=_PATH)
    listed = body.get("invalid_external_userid") or []
    if not isinstance(listed, list) or not all(isinstance(i, str) for i in listed):
        raise InvalidResponseError("'invalid_external_userid' is not a list of strings", path=_PATH)
    asked = set(chunk)
    found: dict[str, Customer] = {}
    for customer in customers:
        if customer.external_userid in asked:
            found.setdefault(customer.external_userid, customer)
    # Listed as invalid or not mentioned at all: either way WeChat gave nothing for the id.
    return _Answer(found, frozenset(asked - found.keys()))


def _finish(ids: list[str], run: Run[list[str], _Answer]) -> CustomerBatch:
    found: dict[str, Customer] = {}
    invalid: set[str] = set()
    for _, answer in run.sent:
        found.update(answer.found)
        invalid.update(answer.invalid)
    result = CustomerBatch(
        customers=[found[i] for i in ids if i in found],
        invalid=[i for i in ids if i in invalid],
    )
    unprocessed = [i for i in ids if i not in found and i not in invalid]
    if unprocessed or run.callback_error is not None:
        error: BatchError[CustomerBatch] = BatchError(result, unprocessed, [], run.errors)
        raise error from run.callback_error
    return result
