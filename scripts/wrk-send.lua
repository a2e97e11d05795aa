-- wrk script: POST /v1/messages with a 256-byte payload, round-robin over 64 mailboxes, each
-- request signed by one of the agents in TOKENS (comma-separated; several agents, so the
-- per-agent rate limit keeps its default).
-- Usage: TOKENS=$(...) wrk -t2 -c64 -d20s -s scripts/wrk-send.lua http://127.0.0.1:7700
local tokens = {}
for t in string.gmatch(os.getenv("TOKENS") or "", "[^,]+") do tokens[#tokens + 1] = t end
local pad = string.rep("x", 256)
local n = 0
request = function()
  n = n + 1
  local body = '{"to":"mailbox:wrk-' .. (n % 64) .. '","payload":"' .. pad .. '"}'
  local token = tokens[(n % math.max(#tokens, 1)) + 1] or ""
  return wrk.format("POST", "/v1/messages",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }, body)
end
