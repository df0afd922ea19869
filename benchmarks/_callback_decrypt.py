"""Decrypting one WeCom ``kf_msg_or_event`` push, in a fresh process of the venv being measured
(run by ``python benchmarks/_callback_decrypt.py JOB``; the job is a JSON object, the result one
JSON line on stdout). It imports only the standard library and the side its job names, so each
venv needs only its own library:

- ``seal`` (``wechat-kf[callbacks]``): the push WeChat would POST for ``job["plaintext"]``, with
  its query parameters, timestamped now (or at ``job["timestamp"]``);
- ``wechat_kf``: ``CallbackCrypto.decrypt`` of that push into a ``KfMsgOrEvent``;
- ``wechatpy``: wechatpy's WeCom ``WeChatCrypto.decrypt_message`` of the same push, and the
  ``xmltodict.parse`` of the XML it returns, which is how its callers get the fields.

A decrypt job times ``job["batches"]`` batches of ``job["calls"]`` calls after a few untimed ones
and reports the median batch, with the fields the last call gave (the parent checks both sides
read the same push)."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

#: What a decrypt job reports it read, by the same names on both sides.
FIELDS = ("corpid", "open_kfid", "token", "create_time")


def seal(job: dict[str, Any]) -> dict[str, Any]:
    from wechat_kf.callbacks import CallbackCrypto

    crypto = CallbackCrypto(job["token"], job["encoding_aes_key"], job["corpid"])
    sealed = crypto.seal(job["plaintext"], timestamp=job.get("timestamp"))  # None: now
    return {
        "body": sealed.body,
        "msg_signature": sealed.msg_signature,
        "timestamp": sealed.timestamp,
        "nonce": sealed.nonce,
    }


def measure(one: Callable[[], Any], calls: int, batches: int) -> tuple[dict[str, Any], Any]:
    """Median wall and CPU microseconds per call of ``one`` over ``batches`` batches, and what
    its last call returned."""
    result = None
    for _ in range(min(calls, 200)):  # imports, caches, the allocator's first pages
        result = one()
    walls, cpus = [], []
    for _ in range(batches):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            result = one()
        walls.append((time.perf_counter() - wall) / calls * 1e6)
        cpus.append((time.process_time() - cpu) / calls * 1e6)
    figures = {
        "us_per_call": statistics.median(walls),
        "cpu_us_per_call": statistics.median(cpus),
        "batch_us_per_call": walls,
    }
    return figures, result


def decrypt_wechat_kf(job: dict[str, Any]) -> dict[str, Any]:
    from wechat_kf.callbacks import CallbackCrypto, KfMsgOrEvent

    # max_age=300 (the default): the timestamp is checked against the clock on every call.
    crypto = CallbackCrypto(job["token"], job["encoding_aes_key"], job["corpid"], max_age=300)
    push = job["push"]
    body = push["body"].encode("utf-8")  # what a web framework hands over
    signature, timestamp, nonce = push["msg_signature"], push["timestamp"], push["nonce"]

    def one() -> Any:
        return crypto.decrypt(body, msg_signature=signature, timestamp=timestamp, nonce=nonce)

    figures, event = measure(one, job["calls"], job["batches"])
    if not isinstance(event, KfMsgOrEvent):
        raise RuntimeError(f"wechat_kf decrypted {type(event).__name__}, not KfMsgOrEvent")
    read = {
        "corpid": event.corpid,
        "open_kfid": event.open_kfid,
        "token": str(event.token),
        "create_time": int(event.create_time.timestamp()),
    }
    return {**figures, "side": "wechat_kf", "read": read}


def decrypt_wechatpy(job: dict[str, Any]) -> dict[str, Any]:
    import xmltodict
    from wechatpy.enterprise.crypto import WeChatCrypto

    crypto = WeChatCrypto(job["token"], job["encoding_aes_key"], job["corpid"])
    push = job["push"]
    body = push["body"].encode("utf-8")
    signature, timestamp, nonce = push["msg_signature"], push["timestamp"], push["nonce"]

    def one() -> Any:
        xml = crypto.decrypt_message(body, signature, timestamp, nonce)
        return xmltodict.parse(xml)["xml"]

    figures, fields = measure(one, job["calls"], job["batches"])
    if fields.get("MsgType") != "event" or fields.get("Event") != "kf_msg_or_event":
        raise RuntimeError(f"wechatpy decrypted something else: {sorted(fields)}")
    read = {
        "corpid": fields["ToUserName"],
        "open_kfid": fields["OpenKfId"],
        "token": fields["Token"],
        "create_time": int(fields["CreateTime"]),
    }
    return {**figures, "side": "wechatpy", "read": read}


JOBS = {"seal": seal, "wechat_kf": decrypt_wechat_kf, "wechatpy": decrypt_wechatpy}


def main() -> None:
    job = json.loads(sys.argv[1])
    print(json.dumps(JOBS[job["job"]](job)))


if __name__ == "__main__":
    main()
