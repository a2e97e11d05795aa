"""One MCP client for the test scripts: the official Python SDK (1.x or 2.x, whichever this
venv holds) connected to the broker's /mcp with a bearer token, in a chosen connection mode.

Modes:
  auto               2.x default: probes server/discover (2026-07-28), falls back to initialize
  legacy             the handshake era: initialize offering 2025-11-25 (1.x always does this)
  legacy-2025-06-18  the handshake era, offering 2025-06-18
"""

import contextlib
import json
import sys
import urllib.error
import urllib.request
from importlib.metadata import version as _version

SDK = _version("mcp")
SDK_MAJOR = int(SDK.split(".")[0])
PINNED = "2025-06-18"


class Agent:
    """A connected agent: tool calls answer plain dicts (camelCase keys, as on the wire)."""

    def __init__(self, client, protocol):
        self.client = client
        self.protocol = protocol

    async def call(self, name, arguments=None):
        r = await self.client.call_tool(name, arguments or {})
        return r.model_dump(by_alias=True, mode="json", exclude_none=True)

    async def tools(self):
        r = await self.client.list_tools()
        return [t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in r.tools]


@contextlib.asynccontextmanager
async def connect(url, token, mode="auto"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if SDK_MAJOR >= 2:
        import httpx2
        import mcp.client.session as session_module
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        if mode == "legacy-2025-06-18":
            session_module.LATEST_HANDSHAKE_VERSION = PINNED
            mode = "legacy"
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120))
        async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as c:
            yield Agent(c, c.protocol_version)
    else:
        import httpx
        import mcp.types
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        if mode == "legacy-2025-06-18":
            mcp.types.LATEST_PROTOCOL_VERSION = PINNED
        elif mode != "legacy":
            raise SystemExit(f"SDK 1.x has no mode {mode!r}")
        http = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=120))
        async with http, streamable_http_client(url, http_client=http) as (read, write, _):
            async with ClientSession(read, write) as s:
                init = await s.initialize()
                yield Agent(s, init.protocolVersion)


def rest(base, token, method, path, body=None):
    """A plain REST call (the other face of the broker), answering (status, json)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=90) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None


def report(**fields):
    """One JSON line on stdout for the Rust test to read."""
    print(json.dumps(fields), flush=True)


def check(cond, what, detail=None):
    if not cond:
        print(f"CHECK FAILED: {what}: {json.dumps(detail)[:2000]}", file=sys.stderr, flush=True)
        raise SystemExit(1)


def text_of(result):
    return "".join(c.get("text", "") for c in result.get("content", []))


def args():
    """argv[1] is a JSON object: {"url", "base", "mode", "tokens": {agent: token}}."""
    return json.loads(sys.argv[1])
