"""The models as rich tables, for listings and the demo, and as aligned plain lines where a
rich table would be too slow (thousands of customers) or cannot be streamed (message records).
Every string WeChat sent is shown without its control characters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from rich.cells import cell_len
from rich.table import Table

from wechat_kf import (
    BatchResult,
    BusinessCardMessage,
    Customer,
    EnterSessionEvent,
    FileMessage,
    ImageMessage,
    KfAccount,
    KfEvent,
    KfMessage,
    KfSession,
    LinkMessage,
    LocationMessage,
    MenuMessage,
    MessageOrigin,
    MessageRecord,
    MiniprogramMessage,
    MsgSendFailEvent,
    OnlineKfAccount,
    RecallEvent,
    Servicer,
    ServicerResult,
    ServicerStatusChangeEvent,
    SessionState,
    SessionStatusChangeEvent,
    TextMessage,
    UnknownEvent,
    UnknownMessage,
    VideoMessage,
    VoiceMessage,
    WaitingCases,
    WeComKfAccount,
)

# WeChat's strings reach the terminal: no escape sequence of theirs.
_CONTROL = {code: "?" for code in [*range(32), 127]}
_GENDERS = {0: "unknown", 1: "male", 2: "female"}
_OPERCODES = {2002: "2002 kf sent", 2003: "2003 received"}
#: The columns of a message record line, and the width each is padded to (the text is last).
RECORD_COLUMNS = (("time", 25), ("opercode", 13), ("worker", 24), ("openid", 28), ("text", 0))
#: The columns of a received 微信客服 message's line (``messages tail``), the text last.
MESSAGE_COLUMNS = (("time", 25), ("origin", 8), ("external_userid", 32), ("type", 16), ("text", 0))


def ident(item: ServicerResult) -> str:
    """How a batch item is named to a person: its userid, or "department N"."""
    return item.userid if item.userid is not None else f"department {item.department_id}"


def accounts_table(accounts: Sequence[KfAccount]) -> Table:
    table = Table("kf_account", "nickname", "kf_id", "bound WeChat", "invitation")
    for a in accounts:
        invitation = "-"
        if a.invite_status is not None:
            invitation = f"{a.invite_wx} ({a.invite_status.value})"
        table.add_row(a.kf_account, a.kf_nick or "", a.kf_id or "", a.kf_wx or "-", invitation)
    return table


def online_table(accounts: Sequence[OnlineKfAccount]) -> Table:
    table = Table("kf_account", "status", "kf_id", "sessions")
    for a in accounts:
        table.add_row(a.kf_account, str(a.status), a.kf_id or "", str(a.accepted_case))
    return table


def servicers_table(servicers: Sequence[Servicer]) -> Table:
    table = Table("userid", "department_id", "status", "stop_type")
    for s in servicers:
        status = s.status.name.lower() if s.status is not None else "-"
        table.add_row(
            s.userid or "-",
            str(s.department_id) if s.department_id is not None else "-",
            status,
            str(s.stop_type) if s.stop_type is not None else "-",
        )
    return table


def wecom_accounts_table(accounts: Sequence[WeComKfAccount]) -> Table:
    table = Table("open_kfid", "name", "manageable", "avatar")
    for a in accounts:
        manageable = "-" if a.manage_privilege is None else ("yes" if a.manage_privilege else "no")
        table.add_row(a.open_kfid, a.name or "", manageable, a.avatar or "-")
    return table


def result_table(result: BatchResult, *, only_failed: bool = False) -> Table:
    """A row per item (a few: a large batch is reported by ``reports``)."""
    table = Table("id", "errcode", "errmsg")
    for item in result.failed if only_failed else result.items:
        code = "-" if item.errcode is None else str(item.errcode)
        style = None if item.ok else "red"
        table.add_row(ident(item), code, item.errmsg, style=style)
    return table


def plain(text: str | None, empty: str = "-") -> str:
    """``text`` as a terminal may show it: control characters as "?", None or "" as ``empty``."""
    return text.translate(_CONTROL) if text else empty


def local_time(value: datetime | None) -> str:
    """An aware time in this machine's time zone, ISO 8601 to the second with its offset."""
    return value.astimezone().isoformat(timespec="seconds") if value is not None else "-"


def state_name(state: SessionState | int) -> str:
    """A session state as a person reads it: its name and number, such as "human (3)"."""
    if isinstance(state, SessionState):
        return f"{state.name.lower()} ({state.value})"
    return f"unknown ({state})"


def aligned(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Rows in aligned plain-text columns under ``header`` (the last column is not padded): a
    rich table measures every cell and takes seconds for thousands of rows."""
    lines = [list(header), *(list(row) for row in rows)]
    widths = [max(cell_len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(_line(line, widths) for line in lines)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    pairs = zip(cells[:-1], widths, strict=True)
    padded = [cell + " " * (width - cell_len(cell)) for cell, width in pairs]
    return "  ".join([*padded, cells[-1]]).rstrip()


def customers_text(customers: Sequence[Customer], *, context: bool) -> str:
    """The customers as aligned columns; with ``context``, how each entered the session."""
    header = ["external_userid", "nickname", "gender", "unionid"]
    header += ["scene", "scene_param", "avatar"] if context else ["avatar"]
    rows = []
    for c in customers:
        row = [plain(c.external_userid), plain(c.nickname), _gender(c.gender), plain(c.unionid)]
        if context:
            entered = c.enter_session_context or {}
            row += [plain(_str(entered.get("scene"))), plain(_str(entered.get("scene_param")))]
        rows.append([*row, plain(c.avatar)])
    return aligned(header, rows)


def _gender(gender: int | None) -> str:
    return "-" if gender is None else _GENDERS.get(gender, str(gender))


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def kf_sessions_table(sessions: Sequence[KfSession]) -> Table:
    """An Official Account's sessions: who is served, by which kf account, since when."""
    table = Table("openid", "kf_account", "since")
    for s in sessions:
        table.add_row(plain(s.openid), plain(s.kf_account), local_time(s.created_at))
    return table


def waiting_table(waiting: WaitingCases) -> Table:
    """The users waiting for a kf account, with the time of each one's latest message."""
    table = Table("openid", "latest message")
    for case in waiting.cases:
        table.add_row(plain(case.openid), local_time(case.latest_time))
    return table


def record_line(record: MessageRecord | None) -> str:
    """One message record as a line of fixed columns (None: the header), so that records can
    be printed as they arrive."""
    if record is None:
        cells = [name for name, _ in RECORD_COLUMNS]
    else:
        cells = [
            local_time(record.time),
            _OPERCODES.get(record.opercode, str(record.opercode)),
            plain(record.worker),
            plain(record.openid),
            plain(record.text.replace("\n", "↵"), ""),
        ]
    return _line(cells, [width for _, width in RECORD_COLUMNS[:-1]])


def message_line(message: KfMessage | None) -> str:
    """One received 微信客服 message as a line of fixed columns (None: the header): its time, who
    it is from (customer, event, servicer), the customer, its type (an event's event_type) and
    its text or, for anything else, a summary of its fields."""
    if message is None:
        cells = [name for name, _ in MESSAGE_COLUMNS]
    else:
        origin = message.origin
        if isinstance(origin, MessageOrigin):
            origin_name = origin.name.lower()
        else:
            origin_name = "-" if origin is None else str(origin)
        kind = message.msgtype
        if isinstance(message, KfEvent) and message.event_type:
            kind = message.event_type
        text = _summary(message)
        if origin == MessageOrigin.SERVICER and message.servicer_userid:
            text = f"{message.servicer_userid}: {text}"
        cells = [
            local_time(message.send_time),
            origin_name,
            plain(message.external_userid),
            plain(kind),
            plain(text.replace("\n", "↵"), ""),
        ]
    return _line(cells, [width for _, width in MESSAGE_COLUMNS[:-1]])


def _summary(m: KfMessage) -> str:
    """What a person needs of a received item, on one line."""
    if isinstance(m, TextMessage):
        return m.content
    if isinstance(m, (ImageMessage, VoiceMessage, VideoMessage, FileMessage)):
        return f"media_id={m.media_id}"
    if isinstance(m, LocationMessage):
        place = " ".join(part for part in (m.name, m.address) if part)
        return f"{place} ({m.latitude}, {m.longitude})".strip()
    if isinstance(m, LinkMessage):
        return " ".join(part for part in (m.title, m.url) if part)
    if isinstance(m, BusinessCardMessage):
        return f"userid={m.userid}"
    if isinstance(m, MiniprogramMessage):
        return " ".join(part for part in (m.title, f"appid={m.appid}", m.pagepath) if part)
    if isinstance(m, MenuMessage):
        return f"{m.head_content or ''} ({len(m.items)} items)".strip()
    if isinstance(m, EnterSessionEvent):
        param = f" scene_param={m.scene_param}" if m.scene_param else ""
        return f"scene={m.scene or '-'}{param}"
    if isinstance(m, MsgSendFailEvent):
        return f"fail_msgid={m.fail_msgid} fail_type={m.fail_type}"
    if isinstance(m, ServicerStatusChangeEvent):
        return f"servicer={m.servicer_userid} status={m.status}"
    if isinstance(m, SessionStatusChangeEvent):
        moved = f" {m.old_servicer_userid or '-'} -> {m.new_servicer_userid or '-'}"
        return f"change_type={m.change_type}{moved}"
    if isinstance(m, RecallEvent):
        return f"recall_msgid={m.recall_msgid}"
    if isinstance(m, (UnknownMessage, UnknownEvent)):
        return f"(not read: {m.reason})"
    return ""
