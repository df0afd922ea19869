"""One worker process for the cross-process platform tests, through its own OpenPlatform and a
RedisTokenStore. By default: N concurrent calls of one authorizer, then one JSON line with what
happened. With ``--rounds``: one call per line read from stdin, a JSON line after each, the
refresh token read from and saved to ``--refresh-file`` (the one source every process shares)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import anyio
from redis.asyncio import Redis

from wechat_kf import WeChatError
from wechat_kf.platforms import OpenPlatform
from wechat_kf.stores import RedisTokenStore


async def main(args: argparse.Namespace) -> None:
    redis = Redis.from_url(args.redis_url)
    store = RedisTokenStore(redis, prefix="platform", command_timeout=10.0)
    outcomes: list[str] = []
    refresh: Any = args.refresh_token
    save = None
    if args.refresh_file:
        path = Path(args.refresh_file)
        refresh = path.read_text
        save = path.write_text
    async with OpenPlatform(
        args.component_appid,
        args.component_secret,
        verify_ticket=args.ticket,  # None: the ticket another process saved in the store
        token_store=store,
        base_url=args.base_url,
        timeout=60,
    ) as platform:
        oa = platform.official_account(
            args.authorizer, refresh_token=refresh, save_refresh_token=save
        )

        async def call() -> None:
            try:
                await oa.kf_accounts.list()
                outcomes.append("ok")
            except WeChatError as exc:
                outcomes.append(f"{type(exc).__name__} {getattr(exc, 'errcode', '')}".strip())

        if args.rounds:
            for _ in range(args.rounds):
                await anyio.to_thread.run_sync(sys.stdin.readline)
                outcomes.clear()
                await call()
                print(json.dumps({"outcome": outcomes[0]}), flush=True)
        else:
            async with anyio.create_task_group() as group:
                for _ in range(args.calls):
                    group.start_soon(call)
    await redis.aclose()
    if not args.rounds:
        errors = [o for o in outcomes if o != "ok"]
        print(json.dumps({"ok": outcomes.count("ok"), "errors": errors}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("base-url", "redis-url", "component-appid", "component-secret", "authorizer"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--ticket")
    parser.add_argument("--refresh-token")
    parser.add_argument("--refresh-file")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=0)
    anyio.run(main, parser.parse_args())
