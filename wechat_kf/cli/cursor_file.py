"""Where ``wechat-kf wecom messages tail`` keeps its place: :class:`CursorFileStore`, an
``InboxStore`` that is a ``MemoryInboxStore`` for everything but the account's sync cursor, which
it reads from a file when the run starts and writes back there as the inbox commits it.

The file holds one JSON object: the open_kfid it follows, the cursor (None: never pulled), and
the msgids printed since that cursor. The inbox commits each message once its handler (the
printing) returned, and the page's cursor with its last message; so after a Ctrl-C or a crash a
rerun starts from the cursor and skips what it printed already: every message is printed once.
Each write replaces the file whole (a temporary file renamed over it), so a run killed midway
leaves the previous state, never half of one. Without a file the store is memory only."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wechat_kf.stores import MemoryInboxStore, PullStart

__all__ = ["CursorFileError", "CursorFileStore", "OutputClosed"]

_KIND = "wechat-kf tail cursor"


class CursorFileError(Exception):
    """The cursor file cannot be read or written (its message names the file)."""


class OutputClosed(Exception):
    """The printing failed (stdout closed): nothing more is committed, so the file keeps the
    last message that was printed."""


class CursorFileStore:
    """An InboxStore keeping the cursor of ``open_kfid`` in ``path`` (None: memory only) and the
    rest (leases, news, outbox) in a ``MemoryInboxStore``. ``stop()`` makes every later commit
    raise :class:`OutputClosed` without writing anything."""

    def __init__(self, path: Path | None, open_kfid: str) -> None:
        self._memory = MemoryInboxStore()
        self.lease: float = self._memory.lease
        self.path = path
        self.open_kfid = open_kfid
        self.cursor: str | None = None
        self._printed: list[str] = []
        self._stopped = False
        if path is not None:
            self.cursor, self._printed = _load(path, open_kfid)
            self._save()  # now: a file that cannot be written is found before any pull

    def stop(self) -> None:
        """Commit nothing from now on (the output is gone)."""
        self._stopped = True

    # -- the cursor, the printed marks: ours ------------------------------------------------

    async def acquire(self, namespace: str, open_kfid: str, owner: str) -> PullStart | None:
        """The memory store's lease, starting from the cursor this store keeps."""
        start = await self._memory.acquire(namespace, open_kfid, owner)
        if start is None:
            return None
        return PullStart(self.cursor, start.generation, start.token, start.token_expires_at)

    async def release(
        self, namespace: str, open_kfid: str, owner: str, generation: int | None
    ) -> PullStart | None:
        """The memory store's release; what follows starts from this store's cursor."""
        following = await self._memory.release(namespace, open_kfid, owner, generation)
        if following is None:
            return None
        return PullStart(
            self.cursor, following.generation, following.token, following.token_expires_at
        )

    async def get_cursor(self, namespace: str, open_kfid: str) -> str | None:
        """The cursor kept (read from the file at the start, then as committed)."""
        return self.cursor

    async def marked(self, namespace: str, open_kfid: str, msgids: Sequence[str]) -> set[str]:
        """Marked in memory, or printed by an earlier run since the file's cursor."""
        marked = await self._memory.marked(namespace, open_kfid, msgids)
        printed = set(self._printed)
        return marked | {msgid for msgid in msgids if msgid in printed}

    async def commit(
        self,
        namespace: str,
        open_kfid: str,
        owner: str,
        marks: Mapping[str, str],
        cursor: str | None,
    ) -> bool:
        """The memory store's commit, then the file: a new cursor replaces the printed marks
        (they are behind it now), else the marks join them."""
        if self._stopped:
            raise OutputClosed()
        if not await self._memory.commit(namespace, open_kfid, owner, marks, cursor):
            return False
        if cursor is not None:
            self.cursor, self._printed = cursor, []
        else:
            self._printed.extend(marks)
        self._save()
        return True

    # -- the rest: the memory store's --------------------------------------------------------

    async def notify(
        self, namespace: str, open_kfid: str, token: str | None, token_expires_at: float | None
    ) -> None:
        """Record news (memory only)."""
        await self._memory.notify(namespace, open_kfid, token, token_expires_at)

    async def pending(self, namespace: str) -> list[str]:
        """The accounts with unsettled news (memory only)."""
        return await self._memory.pending(namespace)

    async def renew(self, namespace: str, open_kfid: str, owner: str) -> bool:
        """Extend the lease (memory only)."""
        return await self._memory.renew(namespace, open_kfid, owner)

    async def replied(self, namespace: str, open_kfid: str, reply_msgid: str) -> bool:
        """Whether a reply was sent (memory only: tail sends none)."""
        return await self._memory.replied(namespace, open_kfid, reply_msgid)

    async def mark_replied(self, namespace: str, open_kfid: str, reply_msgid: str) -> None:
        """Record a reply sent (memory only)."""
        await self._memory.mark_replied(namespace, open_kfid, reply_msgid)

    # -- the file ----------------------------------------------------------------------------

    def _save(self) -> None:
        path = self.path
        if path is None:
            return
        data = {
            "kind": _KIND,
            "open_kfid": self.open_kfid,
            "cursor": self.cursor,
            "printed": self._printed,
        }
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w", encoding="utf-8") as file:
                json.dump(data, file, ensure_ascii=False)
            os.replace(temporary, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            raise CursorFileError(f"cannot write {path}: {exc.strerror or exc}") from None

    def __repr__(self) -> str:
        return f"CursorFileStore(path={self.path!r}, open_kfid={self.open_kfid!r})"


def _load(path: Path, open_kfid: str) -> tuple[str | None, list[str]]:
    """The cursor and printed msgids in ``path``; a file that does not exist, or is empty,
    holds neither. A file of another account or another program is refused."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, []
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CursorFileError(f"cannot read {path}: {reason}") from None
    if not text.strip():
        return None, []
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = None
    if not (isinstance(data, dict) and data.get("kind") == _KIND):
        raise CursorFileError(f"{path} is not a cursor file of wechat-kf tail")
    cursor, printed = data.get("cursor"), data.get("printed", [])
    if not (cursor is None or isinstance(cursor, str)) or not (
        isinstance(printed, list) and all(isinstance(msgid, str) for msgid in printed)
    ):
        raise CursorFileError(f"{path} is not a cursor file of wechat-kf tail")
    if data.get("open_kfid") != open_kfid:
        raise CursorFileError(
            f"{path} follows open_kfid {data.get('open_kfid')!r}, not {open_kfid!r}: give "
            "another --cursor-file"
        )
    return cursor, printed
