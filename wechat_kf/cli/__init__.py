"""The ``wechat-kf`` command: the demo, Official Account kf accounts and sessions, WeCom kf
accounts, servicers, media, sessions, customers and messages (sent, and tailed as they arrive),
and a fake server that can push its callbacks and make its customers write (extra "cli").

Exit codes: 0 all ok; 1 some items or the call failed (WeChat refused ids or a request, the
network failed, lines of an ids file were skipped, ids were left unprocessed); 2 a usage or
configuration error (a bad option, argument or file, missing or refused credentials, a sync
target over WeChat's caps), on every command alike; 130 interrupted. Expected failures print one
line with errcode, errmsg and rid (and advice for the errcodes people meet most); with --json,
every run prints one JSON document on stdout (the chat records too: written as they arrive,
closed whatever stops the run), except ``wecom messages tail``, a stream that never ends: JSON
Lines, one object per line, the last saying why it stopped; secrets are never printed. A call
that may have applied before it failed (a kf account add, a session transfer, a message send)
says what to check before trying again. A reader that closes the pipe (``| head``) ends the run
quietly with the code its work earned.

A module per command family (``oa``, ``oa_sessions``, ``wecom_servicers``,
``wecom_kf_accounts``, ``wecom_media``, ``wecom_sessions``, ``wecom_customers``,
``wecom_messages``, ``fake_server``, ``demo``) under ``root``, over the shared pieces: ``ids``
(files of userids, CSV included), ``progress``, ``reports``, ``failures`` (a large run's
failures grouped, the failures file) and ``tables``, ``exits`` (codes, errors and advice on them,
Ctrl-C, a closed pipe), ``credentials`` and ``options``, ``output``, ``cursor_file`` (where a
tail keeps its place). Commands use the SDK's public names only.

This module imports nothing of the extra: without it, ``main`` says in one line what to install
and exits 2, where an import error's traceback would be all a user saw.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["main"]

#: What the command imports of the "cli" extra, by module name.
_EXTRA = frozenset({"click", "rich"})  # uvicorn: imported by fake-server when it starts


def _without_the_extra(missing: str) -> Any:
    def main(*_: Any, **__: Any) -> None:
        """Say what to install, and exit 2."""
        sys.stderr.write(
            f"error: the wechat-kf command needs the cli extra ({missing} is not installed): "
            "pip install 'wechat-kf[cli]'\n"
        )
        sys.exit(2)

    return main


try:
    from .root import main
except ImportError as _missing:
    _name = (_missing.name or "").partition(".")[0]
    if _name not in _EXTRA:
        raise
    main = _without_the_extra(_name)
