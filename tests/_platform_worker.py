"""One worker process for the cross-process platform test: N concurrent calls of one authorizer
through its own OpenPlatform and a RedisTokenStore, then one JSON line with what happened."""

from __future__ import annotations

import argparse
import json

import anyio
from redis.asyncio import Redis

from wechat_kf import WeChatError
from wechat_kf.platforms import OpenPlatform
from wechat_kf.stores import RedisTokenStore


async def main(args: argparse.Namespace) -> None:
    redis = Redis.from_url(args.redis_url)
    store = RedisTokenStore(redis, prefix="platform", command_timeout=10.0)
    outcomes: list[str] = []
    async with OpenPlatform(
        args.component_appid,
        args.component_secret,
        verify_ticket=args.ticket,
        token_store=store,
        base_url=args.base_url,
        timeout=60,
    ) as platform:
        oa = platform.official_account(args.authorizer, refresh_token=args.refresh_token)

        async def call() -> None:
            try:
                await oa.kf_accounts.list()
                outcomes.append("ok")
            except WeChatError as exc:
                outcomes.append(type(exc).__name__)

        async with anyio.create_task_group() as group:
            for _ in range(args.calls):
                group.start_soon(call)
    await redis.aclose()
    errors = [o for o in outcomes if o != "ok"]
    print(json.dumps({"ok": outcomes.count("ok"), "errors": errors}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("base-url", "redis-url", "component-appid", "component-secret", "ticket",
                 "authorizer", "refresh-token"):  # fmt: skip
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--calls", type=int, default=50)
    anyio.run(main, parser.parse_args())
