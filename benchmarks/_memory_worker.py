"""Peak RSS growth of one servicers.add of N ids, measured in a fresh process."""

from __future__ import annotations

import argparse
import json
import resource
import sys

import anyio

from benchmarks._server import CORPID, OPEN_KFID, WECOM_SECRET
from wechat_kf import WeComClient


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


async def main(args: argparse.Namespace) -> None:
    async with WeComClient(CORPID, WECOM_SECRET, base_url=args.base_url) as client:
        await client.servicers.add(OPEN_KFID, ["user000000"])  # imports, token, connections
        userids = [f"user{i:06d}" for i in range(args.ids)]
        before = peak_rss_bytes()
        result = await client.servicers.add(OPEN_KFID, userids)
        growth = peak_rss_bytes() - before
    print(json.dumps({
        "ids": args.ids,
        "ok": result.ok,
        "rss_growth_bytes": growth,
        "bytes_per_id": growth / args.ids,
    }))  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--ids", type=int, required=True)
    anyio.run(main, parser.parse_args())
