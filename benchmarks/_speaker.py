"""The fake WeChat of the inbox latency benchmark, in its own process: the benchmarks' FakeWeChat
(``_server.build``) served by uvicorn with its pushes delivered in the background
(``fake.pushing()``, in the same event loop), and two more admin routes:

- ``POST /_admin/speak`` {"url", "token", "encoding_aes_key", "rate", "count"}: from now on the
  fake pushes the corp's ``kf_msg_or_event`` to ``url`` (``fake.set_callback``), and a customer
  writes to ``LATENCY_KFID`` ``count`` times, ``rate`` times a second, each on its own schedule
  (the i-th at start + i / rate, however late the ones before it were); answered at once;
- ``POST /_admin/spoken``: whether the customer is done, and for each message its msgid, the
  sync token its push carries and the wall time (``time.time()``) just before it was written,
  with the deliveries the fake made so far.

Run by the orchestrator with its own interpreter (``python -m benchmarks._speaker --port N``),
like ``_server.py``: the fake is not what is measured."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import anyio
import anyio.abc
import uvicorn

from benchmarks._server import CORPID, admin_app, build
from wechat_kf.testing import FakeWeChat
from wechat_kf.testing._serving import read_body

LATENCY_KFID = "wkBENCH0000000000000000000000003"
LATENCY_CUSTOMER = "wmbenchlatency0001"


async def speak(fake: FakeWeChat, state: dict[str, Any], rate: float, count: int) -> None:
    """The customer writes ``count`` messages, the i-th at start + i / rate."""
    start = time.perf_counter() + 0.01
    for i in range(count):
        await anyio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        spoken_at = time.time()
        msgid = fake.customer_says(LATENCY_KFID, LATENCY_CUSTOMER, f"latency {i}")
        token = fake.latest_sync_token(LATENCY_KFID)
        state["spoken"].append([msgid, token, spoken_at])
    state["done"] = True


def speaker_app(fake: FakeWeChat, group: anyio.abc.TaskGroup, state: dict[str, Any]) -> Any:
    inner = admin_app(fake)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        paths = ("/_admin/speak", "/_admin/spoken")
        if scope["type"] != "http" or scope["path"] not in paths:
            await inner(scope, receive, send)
            return
        body = json.loads(await read_body(receive) or b"{}")
        if scope["path"] == "/_admin/speak":
            fake.set_callback(
                body["url"], token=body["token"], encoding_aes_key=body["encoding_aes_key"]
            )
            state.update(spoken=[], done=False)
            group.start_soon(speak, fake, state, float(body["rate"]), int(body["count"]))
            answer: dict[str, Any] = {"started": True}
        else:
            deliveries = fake.callback_deliveries
            answer = {
                **state,
                "deliveries": len(deliveries),
                "failed_deliveries": sum(1 for d in deliveries if not d.ok),
                "pending_pushes": fake.pending_pushes,
            }
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})

    return app


async def serve(port: int) -> None:
    fake = build(members=10)
    fake.create_kf_account(CORPID, "latency", open_kfid=LATENCY_KFID)
    state: dict[str, Any] = {"spoken": [], "done": False}
    async with anyio.create_task_group() as group, fake.pushing():
        config = uvicorn.Config(
            speaker_app(fake, group, state), host="127.0.0.1", port=port, log_level="warning",
            access_log=False, interface="asgi3", lifespan="off",
        )  # fmt: skip
        await uvicorn.Server(config).serve()  # until SIGTERM
        group.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    anyio.run(serve, args.port)


if __name__ == "__main__":
    main()
