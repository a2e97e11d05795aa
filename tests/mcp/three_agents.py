"""The README's three-agent example, through MCP only: a planner hands a task to a worker, the
worker replies on the thread and acks, and a reviewer follows the `reviews` topics."""

import asyncio

from agent import args, check, connect, report, text_of


async def main():
    a = args()
    url, tok, mode = a["url"], a["tokens"], a["mode"]
    async with connect(url, tok["planner"], mode) as planner, \
            connect(url, tok["worker"], mode) as worker, \
            connect(url, tok["reviewer"], mode) as reviewer:
        r = await reviewer.call("subscribe_topic", {"pattern": "reviews.#"})
        check(not r["isError"], "reviewer subscribes", r)

        # the worker waits for work while the planner sends it
        waiting = asyncio.create_task(worker.call("check_inbox", {"wait_seconds": 30}))
        r = await planner.call("send_message", {
            "to": "mailbox:worker", "payload": {"task": "summarise", "doc": 42},
            "thread_id": "job-1", "reply_to": "mailbox:planner", "require_ack": True})
        check(not r["isError"], "planner sends", r)
        r = await waiting
        task = r["structuredContent"]["messages"]
        check(len(task) == 1 and task[0]["from"] == "planner" and task[0]["require_ack"], "worker gets the task", r)
        task = task[0]

        r = await worker.call("send_message", {
            "to": task["reply_to"], "payload": "Doc 42: three findings.", "thread_id": task["thread_id"]})
        check(not r["isError"], "worker replies on the thread", r)
        r = await worker.call("ack_message", {"id": task["id"]})
        check(not r["isError"], "worker acks", r)
        r = await worker.call("send_message", {"to": "topic:reviews.doc42", "payload": "Summary of doc 42 ready"})
        check(not r["isError"], "worker publishes for review", r)

        r = await planner.call("check_inbox", {"wait_seconds": 10})
        reply = r["structuredContent"]["messages"]
        check(len(reply) == 1 and reply[0]["from"] == "worker" and reply[0]["thread_id"] == "job-1", "planner gets the reply", r)
        report(planner_reads=text_of(r))

        r = await reviewer.call("check_inbox", {"wait_seconds": 10})
        seen = r["structuredContent"]["messages"]
        check(len(seen) == 1 and seen[0]["from"] == "worker" and seen[0].get("topic") in (None, "reviews.doc42"),
              "reviewer gets the topic copy", r)
        r = await planner.call("browse_messages", {"mailbox": "worker"})
        check(r["isError"] and "permission_denied" in text_of(r), "planner may not read the worker's mailbox", r)
        report(ok=True)


asyncio.run(main())
