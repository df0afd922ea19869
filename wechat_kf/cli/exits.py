"""How a run ends: its exit code, the one line of an expected failure (with advice for the
errcodes people meet most), the one JSON document of a --json run whatever stops it (a usage
error, a refusal, Ctrl-C), what a Ctrl-C means once the work is done, and a stdout whose reader
went away; and, unless -v, no WARNING line per retry."""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import click
from rich.markup import escape

from wechat_kf import APIError, CredentialError, WeChatError

from .options import GIVEN, GLOBALS, leaf_command
from .output import (
    FINISHED,
    JSON_LINES,
    PRINTED,
    VERBOSE,
    WANTS_JSON,
    err,
    print_json,
    reader_gone,
    run_state,
    sigint_deferred,
    silence_stdout,
)

OK = 0
FAILED = 1  # some items or the call failed
USAGE = 2  # a usage or configuration error, refused credentials
INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT
#: The root context's meta key of the command line as given.
_LINE = "wechat_kf.line"

#: What to do about the errcodes a user of the command meets most, by errcode.
ADVICE = {
    45009: "WeChat's quota for this call is used up for now (sync_msg pulls without a "
    "callback token are limited hardest); it comes back with time",
    45080: "typing shows only within 30 s of the user's last message: wait until they write",
    60111: "not a member of the corp, or outside the app's visible range (the admin console: "
    "the app, then its visible range)",
    95001: "this msgid was used on this kf account already, so that message was most likely "
    "sent: look for it in the conversation; send anything new without --msgid",
    95010: "a send_msg_on_event code serves one message, within its life (a welcome_code 20 s): "
    "this one was used or has expired; answer with a plain send instead",
    95018: "the session is not in a state the API may send in (0 or 1): see it with 'wechat-kf "
    "wecom sessions get'",
}


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


def describe(error: BaseException) -> str:
    """An error in one line: WeChat's errcode, errmsg, rid and path (and what to do about the
    errcode, when :data:`ADVICE` knows: its hint), or the SDK's redacted message."""
    if isinstance(error, APIError):
        rid = error.rid or "-"
        line = f"errcode={error.errcode} errmsg={error.errmsg!r} rid={rid} path={error.path}"
        advice = ADVICE.get(error.errcode)
        return f"{line}; advice: {advice}" if advice else line
    if isinstance(error, WeChatError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def error_data(error: BaseException) -> dict[str, Any]:
    """An error as JSON: its type and message, and WeChat's errcode, errmsg and rid when it gave
    them (the message is redacted like every WeChatError's), and ``advice`` for the errcodes of
    :data:`ADVICE`."""
    data: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    for field in ("errcode", "errmsg", "rid", "path", "status_code", "maybe_applied", "msgid"):
        value = getattr(error, field, None)
        if value is not None:
            data[field] = value
    advice = ADVICE.get(data["errcode"]) if isinstance(data.get("errcode"), int) else None
    if advice:
        data["advice"] = advice
    return data


def exit_code(errors: Sequence[BaseException], failed: bool) -> int:
    """The code of a run whose requests met ``errors``: refused credentials are a configuration
    error on every command (2), whatever else happened; else 1 when anything ``failed``."""
    if any(isinstance(error, CredentialError) for error in errors):
        return USAGE
    return FAILED if failed else OK


class _QuietRetries(logging.Filter):
    """Drops the SDK's WARNING of each retry (the run's report says what finally failed)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.WARNING and record.funcName == "on_retry")


def run(
    main: Callable[[], Awaitable[int]],
    *,
    as_json: bool = False,
    interrupted: Callable[[], None] | None = None,
) -> None:
    """Run ``main`` on anyio and turn expected failures into one line (and, with --json, one
    JSON document on stdout) and an exit code; Ctrl-C exits 130 after ``interrupted`` reports
    what was done. A reader of stdout that went away (``| head``) ends the run quietly with the
    code its work earned (0 when it had not finished: it stopped because nobody reads)."""
    quiet = None if run_state().get(VERBOSE) else _QuietRetries()
    retries = logging.getLogger("wechat_kf.transport")
    if quiet is not None:
        retries.addFilter(quiet)
    try:
        code = _outcome(main, as_json, interrupted)
    except OSError as exc:
        if not reader_gone(exc):
            raise
        silence_stdout()
        code = int(run_state().get(FINISHED, OK))
    finally:
        if quiet is not None:
            retries.removeFilter(quiet)
    sys.exit(code)


def _outcome(
    main: Callable[[], Awaitable[int]],
    as_json: bool,
    interrupted: Callable[[], None] | None,
) -> int:
    try:
        return anyio.run(main)
    except Exit as stop:
        if as_json:
            print_json({"ok": False, "error": {"type": "UsageError", "message": stop.message}})
        return stop.code
    except KeyboardInterrupt:
        return _after_ctrl_c(as_json, interrupted)
    except (ValueError, TypeError) as exc:
        return _report_error(exc, USAGE, as_json)
    except CredentialError as exc:
        return _report_error(exc, USAGE, as_json, "credentials refused: ")
    except WeChatError as exc:
        return _report_error(exc, FAILED, as_json)
    except BaseException as exc:
        if not _ctrl_c_on_python_3_10(exc):
            raise
        return _after_ctrl_c(as_json, interrupted)


def _ctrl_c_on_python_3_10(error: BaseException) -> bool:
    """Whether ``error`` is how a Ctrl-C leaves ``anyio.run`` on Python 3.10: asyncio there has
    no runner that turns the main task's cancellation back into KeyboardInterrupt, so it comes
    out as that cancellation (nothing else cancels the command's main task)."""
    if sys.version_info >= (3, 11):
        return False
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(error, asyncio.CancelledError)


def final_report(code: int, write: Callable[[], None]) -> int:
    """Write the report of work that finished, whole: a Ctrl-C meanwhile is held back until it
    is out, and the run exits with ``code`` whatever follows (a reader that went away
    included)."""
    with sigint_deferred():
        try:
            write()
        except OSError as exc:
            if not reader_gone(exc):
                raise
            silence_stdout()
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
    value, a missing argument, an unknown command) is also one JSON document on stdout; a global
    option given before a command that does not take it is a usage error, not ignored."""

    def _check_globals(self, ctx: click.Context) -> None:
        given = ctx.meta.get(GIVEN, {})
        found = leaf_command(self, ctx.meta.get(_LINE, []))
        if not given or found is None or isinstance(found[0], click.Group):
            return  # no command yet: click says what is missing
        command, path = found
        takes = {param.name for param in command.params}
        for name in given:
            if name not in takes:
                raise click.UsageError(f"{GLOBALS[name][0]} does not apply to '{path}'", ctx)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        as_json = _asks_for_json(args)
        line = list(args)
        try:
            context = super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            if as_json:
                _usage_error_json(exc)
            raise
        context.meta[WANTS_JSON] = as_json
        context.meta[_LINE] = line
        return context

    def invoke(self, ctx: click.Context) -> Any:
        try:
            self._check_globals(ctx)
            return super().invoke(ctx)
        except click.ClickException as exc:
            if ctx.meta.get(WANTS_JSON):
                _usage_error_json(exc)
            raise
