"""check_inbox waits: woken by a REST send (prints the delay from the send to the answer), and
an empty inbox answers an empty list once wait_seconds have passed."""

import asyncio
import time

from agent import args, check, connect, report, rest


async def main():
    a = args()
    async with connect(a["url"], a["tokens"]["bob"], a["mode"]) as bob:
        # empty inbox: an empty list after wait_seconds
        t0 = time.monotonic()
        r = await bob.call("check_inbox", {"wait_seconds": 1})
        waited = time.monotonic() - t0
        check(not r["isError"] and r["structuredContent"]["messages"] == [], "empty inbox", r)
        check(0.9 <= waited < 5, "waited about 1 s", waited)
        report(empty_after_s=round(waited, 3))

        # woken by a REST send while the call waits
        async def send_later():
            await asyncio.sleep(0.5)  # let the call reach the broker and start waiting
            sent_at = time.monotonic()
            status, body = await asyncio.to_thread(
                rest, a["base"], a["tokens"]["alice"], "POST", "/v1/messages",
                {"to": "mailbox:bob", "payload": "wake up"})
            check(status == 201, "REST send", body)
            return sent_at

        t0 = time.monotonic()
        sender = asyncio.create_task(send_later())
        r = await bob.call("check_inbox", {"wait_seconds": 30})
        answered_at = time.monotonic()
        sent_at = await sender
        msgs = r["structuredContent"]["messages"]
        check(not r["isError"] and len(msgs) == 1 and msgs[0]["payload"] == "wake up", "woken", r)
        check(answered_at - t0 < 10, "answered long before wait_seconds", answered_at - t0)
        report(wake_delay_ms=round((answered_at - sent_at) * 1000, 2))
        report(ok=True)


asyncio.run(main())
