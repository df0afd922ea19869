"""wechatpy's side of a comparison, in a fresh process of a venv holding only wechatpy (run by
``python benchmarks/_wechatpy_client.py JOB``): ``job["calls"]`` sequential ``getkflist`` calls,
as its users make them. The result is one JSON line on stdout."""

from __future__ import annotations

import json
import sys
import time

from wechatpy import WeChatClient


def main() -> None:
    job = json.loads(sys.argv[1])
    client = WeChatClient(job["appid"], job["secret"], access_token=job["token"])
    client.API_BASE_URL = f"{job['base_url']}/cgi-bin/"
    client.customservice.get_accounts()  # a connection, outside the timing
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(job["calls"]):
        client.customservice.get_accounts()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = job["calls"]
    print(json.dumps({
        "wall_s": wall, "wall_us_per_call": wall / n * 1e6, "cpu_us_per_call": cpu / n * 1e6,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
