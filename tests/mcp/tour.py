"""Every tool, errors as tool results, and a session that survives them — in one connection mode.
Agents: alice and bob (plain agents), carol (another agent whose mailbox alice may not read)."""

import asyncio

from agent import args, check, connect, report, text_of, SDK

TOOLS = {"send_message", "check_inbox", "browse_messages", "ack_message", "mark_read",
         "list_topics", "subscribe_topic", "unsubscribe_topic"}


async def main():
    a = args()
    url, tok, mode = a["url"], a["tokens"], a["mode"]
    async with connect(url, tok["alice"], mode) as alice, connect(url, tok["bob"], mode) as bob:
        report(sdk=SDK, mode=mode, protocol=alice.protocol)

        tools = await alice.tools()
        names = {t["name"] for t in tools}
        check(names == TOOLS, "tools/list names", sorted(names))
        for t in tools:
            check("outputSchema" in t and t["inputSchema"]["type"] == "object", "schemas", t)
        send_schema = next(t for t in tools if t["name"] == "send_message")["inputSchema"]
        check(set(send_schema["required"]) == {"to", "payload"}, "send_message required", send_schema)

        # send_message: the sender is the token's agent, whatever the arguments say
        r = await alice.call("send_message", {"to": "mailbox:bob", "payload": {"task": "summarise", "doc": 42},
                                              "thread_id": "t-9", "reply_to": "mailbox:alice",
                                              "require_ack": True, "priority": "high"})
        check(not r["isError"], "send_message", r)
        sent = r["structuredContent"]
        check(sent["status"] == "stored" and sent["id"], "send receipt", sent)
        forged = await alice.call("send_message", {"to": "mailbox:bob", "payload": "x", "from": "carol"})
        check(forged["isError"] and "bad_request" in text_of(forged), "`from` is refused", forged)

        # browse_messages: no side effects; filters
        r = await bob.call("browse_messages", {"thread_id": "t-9"})
        check(not r["isError"], "browse", r)
        msgs = r["structuredContent"]["messages"]
        check(len(msgs) == 1 and msgs[0]["from"] == "alice" and msgs[0]["id"] == sent["id"], "browse result", msgs)
        check(r["structuredContent"]["unread"] == 1, "unread count", r["structuredContent"])
        check('from agent "alice"' in text_of(r) and "not an instruction" in text_of(r), "framing", text_of(r))

        # check_inbox: hands the message over, with its fields
        r = await bob.call("check_inbox", {"max": 5})
        check(not r["isError"], "check_inbox", r)
        got = r["structuredContent"]["messages"]
        check(len(got) == 1, "one message received", got)
        m = got[0]
        for k, v in {"id": sent["id"], "from": "alice", "thread_id": "t-9", "reply_to": "mailbox:alice",
                     "payload": {"task": "summarise", "doc": 42}}.items():
            check(m.get(k) == v, f"message field {k}", m)
        check(m["seq"] and m["attempt"] == 1, "seq and attempt", m)
        report(received_text=text_of(r))

        # ack_message; a second ack is a conflict, as over REST
        r = await bob.call("ack_message", {"id": m["id"]})
        check(not r["isError"] and r["structuredContent"]["status"] == "acked", "ack", r)
        r = await bob.call("ack_message", {"id": m["id"]})
        check(r["isError"] and "conflict" in text_of(r), "second ack", r)

        # mark_read: by ids, then by up_to
        r = await bob.call("mark_read", {"ids": [m["id"]]})
        check(not r["isError"] and r["structuredContent"]["unread"] == 0, "mark_read ids", r)
        r2 = await alice.call("send_message", {"to": "mailbox:bob", "payload": "second"})
        r = await bob.call("browse_messages", {"unread": True})
        seq = r["structuredContent"]["messages"][-1]["seq"]
        r = await bob.call("mark_read", {"up_to": seq})
        check(not r["isError"] and r["structuredContent"]["unread"] == 0, "mark_read up_to", r)

        # topics: subscribe (durable, into bob's mailbox), publish, list, unsubscribe
        r = await bob.call("subscribe_topic", {"pattern": "research.#"})
        check(not r["isError"] and r["structuredContent"]["mailbox"] == "bob", "subscribe", r)
        r = await alice.call("send_message", {"to": "topic:research.papers", "payload": "new paper"})
        check(not r["isError"] and r["structuredContent"]["recipients"] == 2, "publish", r)
        r = await alice.call("list_topics", {"prefix": "research"})
        check(not r["isError"] and [t["name"] for t in r["structuredContent"]["topics"]] == ["research.papers"],
              "list_topics", r)
        r = await bob.call("browse_messages", {"topic": "research.papers"})
        check(not r["isError"] and len(r["structuredContent"]["messages"]) == 1, "topic history", r)
        r = await bob.call("check_inbox", {"max": 10})
        got = r["structuredContent"]["messages"]
        check(any(g.get("topic") == "research.papers" or g["payload"] == "new paper" for g in got), "topic copy", got)
        r = await bob.call("unsubscribe_topic", {"pattern": "research.#"})
        check(not r["isError"] and len(r["structuredContent"]["removed"]) == 1, "unsubscribe", r)
        r = await alice.call("send_message", {"to": "topic:research.papers", "payload": "another"})
        check(r["structuredContent"]["recipients"] == 1, "no copy after unsubscribe", r)

        # errors are tool results; the session goes on after each
        errors = {
            "unknown tool": (await alice.call("no_such_tool", {}), "bad_request"),
            # a known field's wrong type, a required field missing: a broken rule (422), as over REST
            "malformed arguments": (await alice.call("check_inbox", {"max": "lots"}), "validation_failed"),
            "out of range": (await alice.call("check_inbox", {"wait_seconds": 61}), "validation_failed"),
            "missing required": (await alice.call("send_message", {"payload": "no to"}), "validation_failed"),
            "bad address": (await alice.call("send_message", {"to": "nowhere", "payload": 1}), "validation_failed"),
            "permission": (await alice.call("check_inbox", {"mailbox": "carol"}), "permission_denied"),
            "broadcast": (await alice.call("send_message", {"to": "broadcast", "payload": 1}), "permission_denied"),
            "unknown id": (await bob.call("ack_message", {"id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}), "not_found"),
            "unsubscribe none": (await bob.call("unsubscribe_topic", {"pattern": "nothing.here"}), "not_found"),
        }
        for what, (r, code) in errors.items():
            check(r["isError"] and code in text_of(r), what, r)
            report(error=what, text=text_of(r))
        r = await alice.call("send_message", {"to": "mailbox:bob", "payload": "still here"})
        check(not r["isError"], "the session survives errors", r)
        report(ok=True)


asyncio.run(main())
