"""A FakeWeChat served by uvicorn in its own process, plus two admin routes for the benchmarks:
``GET /_admin/stats`` (token fetches, calls) and ``POST /_admin/config`` ({"latency": s,
"revoke": bool, "tokenless_pulls_per_minute": n})."""

from __future__ import annotations

import argparse
import json
from typing import Any

import uvicorn

from wechat_kf.testing import FakeWeChat
from wechat_kf.testing._serving import read_body

APPID, OA_SECRET = "wxbench000000001", "bench-oa-secret-0123456789"
CORPID, WECOM_SECRET = "wwbench000000001", "bench-wecom-secret-0123456789"
OPEN_KFID = "wkBENCH0000000000000000000000001"
CUSTOMER_PREFIX = "wmbench"
#: The account of the inbox benchmark's backlog (none of the customers benchmark's messages).
INBOX_KFID = "wkBENCH0000000000000000000000002"
INBOX_CUSTOMER = "wmbenchinbox000001"


def build(members: int, customers: int = 0, messages: int = 0) -> FakeWeChat:
    """The fake the benchmarks run against; ``customers``: the even ids among the first that
    many ``customer_id`` ids have written to the account (customers), the odd ones have not
    (invalid to ``customer/batchget``); ``messages``: how many text messages one customer has
    written to ``INBOX_KFID`` (the inbox benchmark's backlog)."""
    fake = FakeWeChat(seed=1)
    fake.register_official_account(APPID, OA_SECRET, wechat_id="gh_bench")
    for i in range(5):
        account = f"kf{i}@gh_bench"
        fake.add_kf_account(APPID, account, f"客服{i}")
        fake.set_online(APPID, account, status=1, accepted_case=i)
    fake.register_wecom_app(CORPID, WECOM_SECRET)
    fake.add_members(CORPID, (f"user{i:06d}" for i in range(members)))
    fake.create_kf_account(CORPID, "bench", open_kfid=OPEN_KFID)
    fake.servicer_cap = members
    for i in range(0, customers, 2):
        fake.customer_says(OPEN_KFID, customer_id(i))
    if messages:
        fake.create_kf_account(CORPID, "inbox", open_kfid=INBOX_KFID)
    for i in range(messages):
        fake.customer_says(INBOX_KFID, INBOX_CUSTOMER, f"message {i}")
    return fake


def customer_id(i: int) -> str:
    """The ``i``-th external_userid of the customers benchmark (a customer when ``i`` is even);
    ``_client.py``, which cannot import this module, makes the same from ``CUSTOMER_PREFIX``."""
    return f"{CUSTOMER_PREFIX}{i:06d}"


def admin_app(fake: FakeWeChat) -> Any:
    inner = fake.app

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/_admin/"):
            await inner(scope, receive, send)
            return
        body = await read_body(receive)
        if scope["path"] == "/_admin/config":
            config = json.loads(body or b"{}")
            if "latency" in config:
                fake.faults.latency = float(config["latency"])
            if "tokenless_pulls_per_minute" in config:
                fake.tokenless_pulls_per_minute = int(config["tokenless_pulls_per_minute"])
            if config.get("revoke"):
                fake.revoke_tokens()
            if config.get("clear_servicers"):
                for corp in fake.corps.values():
                    for kf in corp.kf_accounts.values():
                        kf.servicers.clear()
            fake.calls.clear()
        answer = json.dumps({"token_fetches": fake.token_fetches, "calls": len(fake.calls)})
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": answer.encode()})

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--customers", type=int, default=0)
    parser.add_argument("--messages", type=int, default=0)
    parser.add_argument("--certfile", help="serve HTTPS with this key and certificate chain")
    args = parser.parse_args()
    app = admin_app(build(args.members, args.customers, args.messages))
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False,
        interface="asgi3", lifespan="off", ssl_certfile=args.certfile,
    )  # fmt: skip


if __name__ == "__main__":
    main()
