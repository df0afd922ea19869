"""What FakeWeChat injects and records: faults, calls, replies and refusals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ._injected import ErrcodeFault, ServicerIdFault

__all__ = ["Call", "Faults", "Refusal", "Reply", "Request", "Upload"]


@attrs.define
class Faults:
    """Failures the fake injects, drawn from its seeded random generator: ``latency`` seconds
    (a number, or a ``(low, high)`` range) plus ``token_latency`` on the token endpoints, the rate
    of ``-1`` busy answers, of HTTP ``http_error_status`` answers before the request is applied
    (``http_error_rate``) or after it was applied (``http_error_after_rate``, as a gateway that
    timed out on a slow backend), of connections dropped before the request is applied
    (``drop_rate``) or after it was applied (``drop_after_rate``), of answers that never come
    after the request was applied (``stall_rate``: the client's timeout must end the wait), and
    ``revoke_every`` N business calls all tokens are revoked. A rate left at 0 draws nothing
    from the generator, so adding a fault keeps the others' sequence for a seed. Chosen
    errcodes come on top: ``errcodes`` answer whole calls on a path
    (``FakeWeChat.inject_errcode``), ``servicer_ids`` answer chosen ids of servicer batches
    (``FakeWeChat.fail_servicer_ids``). ``fake.faults = Faults()`` switches everything off."""

    latency: float | tuple[float, float] = 0.0
    token_latency: float = 0.0
    busy_rate: float = 0.0
    http_error_rate: float = 0.0
    http_error_after_rate: float = 0.0
    http_error_status: int = 502
    drop_rate: float = 0.0
    drop_after_rate: float = 0.0
    stall_rate: float = 0.0
    revoke_every: int | None = None
    errcodes: list[ErrcodeFault] = attrs.Factory(list)
    servicer_ids: list[ServicerIdFault] = attrs.Factory(list)

    def errcode_for(
        self, path: str, platform: str, draw: Callable[[], float]
    ) -> ErrcodeFault | None:
        """The first of ``errcodes`` that answers this call, if any (each one asked counts it)."""
        return next((f for f in self.errcodes if f.fires(path, platform, draw)), None)

    def servicer_id_fault(self, path: str, key: object) -> ServicerIdFault | None:
        """The first of ``servicer_ids`` that answers this id of a servicer call, if any."""
        return next((f for f in self.servicer_ids if f.fires(path, key)), None)


@attrs.frozen
class Call:
    """One request the fake received, secrets redacted: method, path, query, JSON body, the
    errcode and HTTP status it answered, and whether the connection was dropped or the answer
    stalled instead (then the client never saw the answer; ``status`` is 0 when nothing was
    applied)."""

    method: str
    path: str
    params: dict[str, str]
    json: Any
    errcode: int | None
    status: int
    dropped: bool = False
    stalled: bool = False

    @property
    def delivered_ok(self) -> bool:
        """True when the client received a success: HTTP 200, errcode 0 or absent, not dropped,
        not stalled."""
        return self.status == 200 and not self.errcode and not self.dropped and not self.stalled


@attrs.frozen
class Upload:
    """One file part of a multipart body: its bytes, and the filename and content type the
    client gave (empty when it gave none)."""

    content: bytes
    filename: str = ""
    content_type: str = ""


@attrs.frozen
class Request:
    """One request as the handlers see it: the JSON ``payload`` (None when the body was not
    JSON), the multipart ``files`` by field name and the same parts with their filename and
    content type (``uploads``)."""

    method: str
    path: str
    query: dict[str, str]
    payload: Any
    files: dict[str, bytes]
    uploads: dict[str, Upload] = attrs.Factory(dict)


@attrs.define
class Reply:
    """The fake's answer: a status and JSON body, or ``raw`` bytes sent as they are with
    ``headers`` (a downloaded file), or a dropped connection, or none at all."""

    status: int
    body: dict[str, Any]
    drop: bool = False
    stall: bool = False
    raw: bytes | None = None
    headers: dict[str, str] = attrs.Factory(dict)


class Refusal(Exception):
    """Raised by a handler to answer with an errcode; the fake adds the errmsg's rid."""

    def __init__(self, errcode: int, text: str) -> None:
        super().__init__(errcode, text)
        self.errcode = errcode
        self.text = text
