"""The models as rich tables, for listings and the demo."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from wechat_kf import (
    BatchResult,
    KfAccount,
    OnlineKfAccount,
    Servicer,
    ServicerResult,
    WeComKfAccount,
)


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
