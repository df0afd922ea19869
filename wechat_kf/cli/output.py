"""Where the command writes: its two consoles, the one JSON document of a --json run, and what
the run has printed and decided so far."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console

# Keys of the root context's meta: every level of the command sees the same run state.
PRINTED = "wechat_kf.printed"
FINISHED = "wechat_kf.finished"
WANTS_JSON = "wechat_kf.json"
VERBOSE = "wechat_kf.verbose"
#: An attribute set on a command whose --json prints JSON Lines (``messages tail``), and the key
#: of the run state saying a usage error of such a command is being reported: its documents,
#: errors included, are then each written on one line.
JSON_LINES = "wechat_kf_json_lines"


def out() -> Console:
    return Console(soft_wrap=True, highlight=False, markup=False)


def err() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def run_state() -> dict[str, Any]:
    """What this run has printed and decided, shared by every level of the command (a fresh,
    forgotten dict outside a command)."""
    context = click.get_current_context(silent=True)
    return {} if context is None else context.find_root().meta


@contextmanager
def sigint_deferred() -> Iterator[None]:
    """SIGINT held back for the block (where the platform allows): delivered after it. Nested
    blocks release it only at the outermost one's end."""
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    before = mask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        mask(signal.SIG_SETMASK, before)


def json_lines() -> bool:
    """Whether the command running (or whose usage error is reported) prints JSON Lines."""
    context = click.get_current_context(silent=True)
    if context is None:
        return False
    return bool(getattr(context.command, JSON_LINES, False) or run_state().get(JSON_LINES))


def print_json(data: Any) -> None:
    """One whole JSON document on stdout: a Ctrl-C while it is made or written waits until it is
    out, and the run prints no other. Indented, or on one line in a JSON Lines command."""
    indent = None if json_lines() else 2
    with sigint_deferred():
        click.echo(json.dumps(data, ensure_ascii=False, indent=indent))
        run_state()[PRINTED] = True
