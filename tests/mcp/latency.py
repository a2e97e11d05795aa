"""Measurement (not a test): send → the waiting receiver's answer, over N round trips, for
  mcp-sdk   check_inbox through the official Python SDK (what an agent sees),
  mcp-raw   the same tools/call as one plain HTTP POST (the broker's share alone),
  rest      POST /v1/mailboxes/{name}/receive long-poll (the REST face, for comparison).
Each round: the receiver starts waiting, 20 ms later a REST send goes out; the delay is from
just before the send to the moment the receiver has its answer.

  python latency.py '{"url":..., "base":..., "mode":"auto", "tokens":{"alice":..,"bob":..}}' [N]
"""

import asyncio
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

from agent import args, connect


class Http:
    """One keep-alive connection per thread."""

    def __init__(self, base, token):
        u = urllib.parse.urlsplit(base)
        self.host, self.port, self.token = u.hostname, u.port, token
        self.local = threading.local()

    def post(self, path, body, headers=None):
        c = getattr(self.local, "c", None)
        if c is None:
            c = self.local.c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        h = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
             "Accept": "application/json, text/event-stream"}
        h.update(headers or {})
        c.request("POST", path, json.dumps(body), h)
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")


def summary(name, samples):
    s = sorted(samples)
    p = lambda q: s[min(len(s) - 1, int(round(q * (len(s) - 1))))]
    return {"name": name, "n": len(s), "p50_ms": round(statistics.median(s), 2),
            "p99_ms": round(p(0.99), 2), "max_ms": round(s[-1], 2)}


async def rounds(n, receive, send):
    out = []
    for _ in range(n):
        async def timed():
            r = await receive()
            return time.perf_counter(), r
        task = asyncio.create_task(timed())
        await asyncio.sleep(0.02)
        t0 = time.perf_counter()
        await asyncio.to_thread(send)
        t1, r = await task
        assert r, "nothing received"
        out.append((t1 - t0) * 1000)
    return out


async def main():
    a = args()
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    base, tok = a["base"], a["tokens"]
    sender = Http(base, tok["alice"])
    receiver = Http(base, tok["bob"])

    def send():
        s, b = sender.post("/v1/messages", {"to": "mailbox:bob", "payload": "ping"})
        assert s == 201, b

    results = []
    async with connect(a["url"], tok["bob"], a["mode"]) as bob:
        async def mcp_sdk():
            r = await bob.call("check_inbox", {"wait_seconds": 10})
            return r["structuredContent"]["messages"]
        await rounds(10, mcp_sdk, send)  # warm-up
        results.append(summary(f"mcp-sdk ({a['mode']}, {bob.protocol})", await rounds(n, mcp_sdk, send)))

    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "check_inbox", "arguments": {"wait_seconds": 10}}}

    def mcp_raw_sync():
        s, b = receiver.post("/mcp", call, {"MCP-Protocol-Version": "2025-11-25"})
        return b["result"]["structuredContent"]["messages"]

    async def mcp_raw():
        return await asyncio.to_thread(mcp_raw_sync)

    await rounds(10, mcp_raw, send)
    results.append(summary("mcp-raw (one HTTP POST)", await rounds(n, mcp_raw, send)))

    def rest_sync():
        s, b = receiver.post("/v1/mailboxes/bob/receive", {"max": 10, "wait_seconds": 10})
        return b["messages"]

    async def rest():
        return await asyncio.to_thread(rest_sync)

    await rounds(10, rest, send)
    results.append(summary("rest long-poll", await rounds(n, rest, send)))
    for r in results:
        print(json.dumps(r), flush=True)


asyncio.run(main())
