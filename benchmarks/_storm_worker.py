"""One process of the Redis token storm: N concurrent calls on a cold shared store."""

from __future__ import annotations

import argparse

import anyio
from redis.asyncio import Redis

from benchmarks._server import APPID, OA_SECRET
from wechat_kf import OfficialAccountClient
from wechat_kf.stores import RedisTokenStore


async def main(args: argparse.Namespace) -> None:
    redis = Redis.from_url(args.redis_url)
    store = RedisTokenStore(redis, prefix="bench")
    async with (
        OfficialAccountClient(APPID, OA_SECRET, base_url=args.base_url, token_store=store) as c,
        anyio.create_task_group() as group,
    ):
        for _ in range(args.calls):
            group.start_soon(c.kf_accounts.list_online)
    await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--calls", type=int, required=True)
    anyio.run(main, parser.parse_args())
