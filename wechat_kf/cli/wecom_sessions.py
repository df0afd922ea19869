"""``wechat-kf wecom sessions``: who is serving a 微信客服 customer (the session's state), and
handing the customer on to the assistant, the waiting pool, a servicer or the end."""

from __future__ import annotations

from typing import Any

import click

from wechat_kf import ServiceState, SessionState, TransportError, WeComClient

from .credentials import wecom_command
from .reports import one_call
from .tables import plain, state_name

_STATES = [state.name.lower() for state in SessionState] + [str(s.value) for s in SessionState]


@click.group("sessions")
def sessions() -> None:
    """The session states of 微信客服 customers."""


def _state_data(state: SessionState | int) -> dict[str, Any]:
    name = state.name.lower() if isinstance(state, SessionState) else None
    return {"state": int(state), "state_name": name}


@wecom_command(sessions, "get", "Show a customer's session state and servicer.")
@click.argument("external_userid")
def sessions_get(open_kfid: str, external_userid: str, **opts: Any) -> None:
    """Print the state of a customer's session (its name and number) and, when a human serves
    it, the servicer's userid."""

    def text(found: ServiceState) -> str:
        return f"state     {state_name(found.state)}\nservicer  {plain(found.servicer_userid)}"

    def data(found: ServiceState) -> dict[str, Any]:
        return {
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            **_state_data(found.state),
            "servicer_userid": found.servicer_userid,
        }

    one_call(opts, WeComClient, lambda c: c.sessions.get(open_kfid, external_userid), text, data)


def _session_state(ctx: click.Context, param: click.Parameter, value: str) -> SessionState:
    return SessionState(int(value)) if value.isdigit() else SessionState[value.upper()]


def _maybe_moved(error: TransportError) -> str:
    return (
        "the state may have changed: read it with 'wechat-kf wecom sessions get' before "
        "trying again"
    )


@wecom_command(
    sessions, "transfer", "Move a customer's session to another state; prints any msg_code."
)
@click.argument("external_userid")
@click.option(
    "--state",
    required=True,
    type=click.Choice(_STATES, case_sensitive=False),
    callback=_session_state,
    help="The new state, by name or number (untreated 0 .. ended 4).",
)
@click.option("--servicer", help="The servicer's userid: required for human (3), only there.")
def sessions_transfer(
    open_kfid: str, external_userid: str, state: SessionState, servicer: str | None, **opts: Any
) -> None:
    """Move a customer's session to ``state`` and print the msg_code WeChat gives when the
    change allows one message (send it with the SDK's ``messages.send_on_event``). Never sent
    twice: after a lost answer it says to read the state before trying again."""
    if (state == SessionState.HUMAN) != (servicer is not None):
        needed = "needs --servicer" if servicer is None else "takes no --servicer"
        raise click.UsageError(f"--state {state_name(state)} {needed} (only human takes one)")

    def text(msg_code: str | None) -> str:
        moved = f"moved {external_userid} to {state_name(state)}"
        return moved + (f"\nmsg_code  {plain(msg_code)}" if msg_code else "\nno msg_code")

    def data(msg_code: str | None) -> dict[str, Any]:
        return {
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            **_state_data(state),
            "servicer_userid": servicer,
            "msg_code": msg_code,
        }

    one_call(
        opts,
        WeComClient,
        lambda c: c.sessions.transfer(open_kfid, external_userid, state, servicer_userid=servicer),
        text,
        data,
        if_maybe_applied=_maybe_moved,
    )
