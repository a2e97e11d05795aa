// The official TypeScript SDK (@modelcontextprotocol/sdk) against /mcp: connect with a bearer
// header, list the tools, send, receive with a wait, ack, and survive an error. The SDK is
// installed by the Rust test into the directory named by MCP_TS_SDK_DIR.
const { createRequire } = require("module");
const sdk = createRequire(process.env.MCP_TS_SDK_DIR + "/package.json");
const { Client } = sdk("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = sdk("@modelcontextprotocol/sdk/client/streamableHttp.js");

const a = JSON.parse(process.argv[2]);
const check = (cond, what, detail) => {
  if (!cond) {
    console.error(`CHECK FAILED: ${what}: ${JSON.stringify(detail)}`);
    process.exit(1);
  }
};

async function connect(agent) {
  const transport = new StreamableHTTPClientTransport(new URL(a.url), {
    requestInit: { headers: { Authorization: `Bearer ${a.tokens[agent]}` } },
  });
  const client = new Client({ name: "ts-check", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

(async () => {
  const alice = await connect("alice");
  const bob = await connect("bob");
  console.log(JSON.stringify({ protocol: alice.transport.protocolVersion ?? null }));
  const { tools } = await bob.listTools();
  check(tools.length === 8 && tools.every((t) => t.outputSchema), "tools", tools.map((t) => t.name));
  const waiting = bob.callTool({ name: "check_inbox", arguments: { wait_seconds: 20 } });
  const sent = await alice.callTool({ name: "send_message", arguments: { to: "mailbox:bob", payload: "hi from ts", require_ack: true } });
  check(!sent.isError, "send", sent);
  const got = await waiting;
  const msgs = got.structuredContent.messages;
  check(msgs.length === 1 && msgs[0].from === "alice" && msgs[0].payload === "hi from ts", "check_inbox", got);
  const acked = await bob.callTool({ name: "ack_message", arguments: { id: msgs[0].id } });
  check(!acked.isError, "ack", acked);
  const bad = await bob.callTool({ name: "ack_message", arguments: {} });
  check(bad.isError && bad.content[0].text.includes("validation_failed"), "error as a tool result", bad);
  const again = await bob.callTool({ name: "list_topics", arguments: {} });
  check(!again.isError, "the session survives", again);
  await alice.close();
  await bob.close();
  console.log(JSON.stringify({ ok: true }));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
