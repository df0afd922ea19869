"""The request ids WeChat writes into an errmsg: what support asks for."""

from __future__ import annotations

import re

__all__ = ["parse_hint", "parse_rid"]

# OA writes "rid: 6582f5c2-1a2b3c4d"; WeCom (and older OA answers) "hint: [1559277777_1_abcdef]";
# some OA answers carry both.
_RID = re.compile(r"\brid:\s*([0-9A-Za-z_\-]+)")
_HINT = re.compile(r"\bhint:\s*\[\s*([^\]\s]+)\s*\]")


def parse_hint(errmsg: str) -> str | None:
    """The ``hint: [<id>]`` WeChat puts in errmsg (WeCom, older Official Account answers), or
    None."""
    match = _HINT.search(errmsg)
    return match.group(1) if match else None


def parse_rid(errmsg: str) -> str | None:
    """The request id support asks for: the ``rid: <id>`` of errmsg (Official Account) when there
    is one, even beside a hint, else its ``hint: [<id>]`` (WeCom), else None."""
    match = _RID.search(errmsg)
    return match.group(1) if match else parse_hint(errmsg)
