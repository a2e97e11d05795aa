"""Without a bearer token the SDK cannot connect: the broker answers HTTP 401."""

import asyncio

from agent import args, connect, report


async def main():
    a = args()
    try:
        async with connect(a["url"], None, a["mode"]) as agent:
            await agent.tools()
    except BaseException as e:  # the SDKs wrap transport failures in exception groups
        report(refused=True, error=repr(e)[:300])
        report(ok=True)
        return
    report(refused=False)
    raise SystemExit(1)


asyncio.run(main())
