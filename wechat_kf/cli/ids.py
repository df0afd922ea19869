"""The ids a batch works on: --userid, --department-id, and files of userids as people make them
(Excel's byte-order mark, GBK exports, '#' comments), refused in one line when they are not a
list of ids."""

from __future__ import annotations

from typing import BinaryIO

from .exits import USAGE, fail


def read_userids(stream: BinaryIO, encoding: str) -> list[str]:
    """The userids of a file, one per line (blank lines and # comments skipped): decoded with
    ``encoding``, a byte-order mark dropped; a file that does not decode, or holds control
    characters, is one line naming it and exit 2."""
    name = getattr(stream, "name", "-")
    name = "standard input" if name in ("-", "<stdin>") else name
    raw = stream.read()
    try:
        text = raw.decode(encoding)
    except LookupError:
        raise fail(f"unknown --encoding {encoding!r}", USAGE) from None
    except UnicodeDecodeError as exc:
        byte = raw[exc.start]
        raise fail(
            f"{name}: not {encoding} text (byte 0x{byte:02x} at offset {exc.start}); "
            "give its encoding with --encoding, such as --encoding gbk",
            USAGE,
        ) from None
    ids = []
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if any(ord(c) < 32 or ord(c) == 127 for c in line):
            raise fail(f"{name}: line {number} holds control characters: not a list of ids", USAGE)
        ids.append(line)
    return ids


def target(
    userids: tuple[str, ...],
    userids_file: BinaryIO | None,
    encoding: str,
    department_ids: tuple[int, ...],
) -> tuple[list[str], list[int]]:
    """The userids (given, then the file's) and department ids a command was given."""
    ids = list(userids) + (read_userids(userids_file, encoding) if userids_file else [])
    return ids, list(department_ids)
