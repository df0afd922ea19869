"""Where the command writes: its two consoles (stdout as wide as its lines when it is not a
terminal, so that a table piped or redirected keeps every column whole), the one JSON document
of a --json run, what the run has printed and decided so far, and a stdout whose reader went
away (``| head``)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sys
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
#: The width of stdout when it is not a terminal: a file or a pipe takes lines of any length,
#: and rich would otherwise cut tables at 80 columns (or $COLUMNS).
_UNBOUNDED = 100_000
_FLAT = json.JSONEncoder(ensure_ascii=False)


class _Console(Console):
    """A console whose closed pipe is the run's to handle (rich's own exits 1 on it)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "the reader of stdout went away")


def out() -> Console:
    """The console of what a run reports, on stdout: a terminal's width, else unbounded."""
    console = _Console(soft_wrap=True, highlight=False, markup=False)
    if not console.is_terminal:
        console.width = _UNBOUNDED
    return console


def err() -> Console:
    return _Console(stderr=True, soft_wrap=True, highlight=False)


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


def dumps(data: Any) -> str:
    """``data`` as JSON for a person and a program: indented, except that each element of a
    top-level array is one line (a batch of 150,000 items is read as fast as it is written,
    where indenting every field takes the pure-Python encoder seconds)."""
    if not isinstance(data, dict):
        return json.dumps(data, ensure_ascii=False, indent=2)
    fields = []
    encode = _FLAT.encode  # one encoder for every item: json.dumps makes one per call
    for key, value in data.items():
        if isinstance(value, list) and value:
            items = ",\n    ".join(map(encode, value))
            text = f"[\n    {items}\n  ]"
        else:
            text = json.dumps(value, ensure_ascii=False, indent=2).replace("\n", "\n  ")
        fields.append(f"  {json.dumps(key, ensure_ascii=False)}: {text}")
    return "{\n" + ",\n".join(fields) + "\n}" if fields else "{}"


def print_json(data: Any) -> None:
    """One whole JSON document on stdout (see :func:`dumps`): a Ctrl-C while it is made or
    written waits until it is out, and the run prints no other. On one line in a JSON Lines
    command."""
    with sigint_deferred():
        text = json.dumps(data, ensure_ascii=False) if json_lines() else dumps(data)
        click.echo(text)
        run_state()[PRINTED] = True


def silence_stdout() -> None:
    """Point stdout at the null device once its reader went away (a pager quit, ``| head`` had
    enough): what Python still flushes at exit then goes nowhere, instead of a second
    BrokenPipeError and a traceback."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # a stdout with no file
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def reader_gone(error: BaseException) -> bool:
    """Whether ``error`` says stdout's reader closed the pipe."""
    return isinstance(error, OSError) and error.errno == errno.EPIPE
