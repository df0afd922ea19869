"""One worker process for the cross-process token tests: N concurrent calls through its own
client and a RedisTokenStore, on asyncio or trio (``--backend``), then one JSON line with what
happened."""

from __future__ import annotations

import argparse
import json

import anyio

from tests._redis import redis_client
from wechat_kf import OfficialAccountClient, WeChatError
from wechat_kf.stores import RedisTokenStore


async def main(args: argparse.Namespace) -> None:
    redis = redis_client(args.redis_url, args.backend)
    # A generous command timeout: four of these start at once on a small, busy machine.
    store = RedisTokenStore(redis, prefix=args.prefix, lease=args.lease, command_timeout=10.0)
    outcomes: list[str] = []

    async def call(client: OfficialAccountClient) -> None:
        try:
            await client.kf_accounts.list()
            outcomes.append("ok")
        except WeChatError as exc:
            outcomes.append(type(exc).__name__)

    client = OfficialAccountClient(
        args.appid,
        args.secret,
        token_store=store,
        use_stable_token=not args.classic,
        base_url=args.base_url,
        timeout=60,
    )
    async with client, anyio.create_task_group() as group:
        for _ in range(args.calls):
            group.start_soon(call, client)
    await redis.aclose()
    errors = [o for o in outcomes if o != "ok"]
    print(json.dumps({"ok": outcomes.count("ok"), "errors": errors}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--appid", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--prefix", default="wechat_kf")
    parser.add_argument("--lease", type=float, default=15.0)
    parser.add_argument("--classic", action="store_true")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    arguments = parser.parse_args()
    anyio.run(main, arguments, backend=arguments.backend)
