"""How a run ends: its exit code, the one line of an expected failure, the one JSON document of
a --json run whatever stops it (a usage error, a refusal, Ctrl-C), and what a Ctrl-C means once
the work is done."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import click
from rich.markup import escape

from wechat_kf import APIError, CredentialError, WeChatError

from .output import (
    FINISHED,
    JSON_LINES,
    PRINTED,
    WANTS_JSON,
    err,
    print_json,
    run_state,
    sigint_deferred,
)

OK = 0
FAILED = 1  # some items or the call failed
USAGE = 2  # a usage or configuration error, refused credentials
INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


class Exit(Exception):
    """Leave with ``code`` after ``message`` was printed (a usage or configuration error)."""

    def __init__(self, code: int, message: str = "") -> None:
        self.code = code
        self.message = message


def fail(message: str, code: int) -> Exit:
    """Print ``message`` as the run's one error line; raise what this returns."""
    # The message may quote WeChat's errmsg: never let it be read as markup.
    err().print(f"[red]error:[/red] {escape(message)}", markup=True)
    return Exit(code, message)


def describe(error: Exception) -> str:
    if isinstance(error, APIError):
        rid = error.rid or "-"
        return f"errcode={error.errcode} errmsg={error.errmsg!r} rid={rid} path={error.path}"
    if isinstance(error, WeChatError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def error_data(error: BaseException) -> dict[str, Any]:
    """An error as JSON: its type and message, and WeChat's errcode, errmsg and rid when it gave
    them (the message is redacted like every WeChatError's)."""
    data: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    for field in ("errcode", "errmsg", "rid", "path", "status_code", "maybe_applied", "msgid"):
        value = getattr(error, field, None)
        if value is not None:
            data[field] = value
    return data


def run(
    main: Callable[[], Awaitable[int]],
    *,
    as_json: bool = False,
    interrupted: Callable[[], None] | None = None,
) -> None:
    """Run ``main`` on anyio and turn expected failures into one line (and, with --json, one
    JSON document on stdout) and an exit code; Ctrl-C exits 130 after ``interrupted`` reports
    what was done."""
    try:
        code = anyio.run(main)
    except Exit as stop:
        code = stop.code
        if as_json:
            print_json({"ok": False, "error": {"type": "UsageError", "message": stop.message}})
    except KeyboardInterrupt:
        code = _after_ctrl_c(as_json, interrupted)
    except (ValueError, TypeError) as exc:
        code = _report_error(exc, USAGE, as_json)
    except CredentialError as exc:
        code = _report_error(exc, USAGE, as_json, "credentials refused: ")
    except WeChatError as exc:
        code = _report_error(exc, FAILED, as_json)
    sys.exit(code)


def final_report(code: int, write: Callable[[], None]) -> int:
    """Write the report of work that finished, whole: a Ctrl-C meanwhile is held back until it
    is out, and the run exits with ``code`` whatever follows."""
    with sigint_deferred():
        write()
        run_state()[FINISHED] = code
    return code


def _after_ctrl_c(as_json: bool, interrupted: Callable[[], None] | None) -> int:
    """The exit code after a Ctrl-C. Once the work finished and its report is out the Ctrl-C
    interrupted nothing, and the run keeps its own code; otherwise 130, after ``interrupted``
    said what was done, and with --json one document whatever the moment."""
    state = run_state()
    if not state.get(PRINTED) and FINISHED not in state and interrupted is not None:
        # It may find the work finished after all (the Ctrl-C came while the client closed)
        # and report it as such.
        interrupted()
    if FINISHED in state:
        return int(state[FINISHED])
    if as_json and not state.get(PRINTED):
        print_json(
            {
                "ok": False,
                "interrupted": True,
                "error": {"type": "Interrupted", "message": "interrupted by Ctrl-C"},
            }
        )
    err().print("interrupted")
    return INTERRUPTED


def _report_error(error: Exception, code: int, as_json: bool, prefix: str = "") -> int:
    if as_json:
        print_json({"ok": False, "error": error_data(error)})
    message = str(error) if isinstance(error, (ValueError, TypeError)) else describe(error)
    return fail(prefix + message, code).code


def _asks_for_json(args: Sequence[str]) -> bool:
    """Whether --json is on the command line (before a ``--``), even one click could not
    parse."""
    args = list(args)
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def _usage_error_json(error: click.ClickException) -> None:
    failed = getattr(error, "ctx", None)  # the context of the (sub)command that refused it
    if failed is not None and getattr(failed.command, JSON_LINES, False):
        run_state()[JSON_LINES] = True
    if not run_state().get(PRINTED):
        message = error.format_message()
        print_json({"ok": False, "error": {"type": "UsageError", "message": message}})


class RootGroup(click.Group):
    """The command's root: with --json on the line, a usage error click reports (a bad option or
    value, a missing argument, an unknown command) is also one JSON document on stdout."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        as_json = _asks_for_json(args)
        try:
            context = super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            if as_json:
                _usage_error_json(exc)
            raise
        context.meta[WANTS_JSON] = as_json
        return context

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if ctx.meta.get(WANTS_JSON):
                _usage_error_json(exc)
            raise
