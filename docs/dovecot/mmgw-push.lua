-- mmgw new-mail hook for Dovecot 2.3's push_notification plugin (Lua driver).
--
-- On every transaction that adds mail to INBOX (LMTP/LDA delivery: MessageNew;
-- IMAP APPEND: MessageAppend) it POSTs one small JSON document to the mmgw
-- gateway, which then fetches the new header at once instead of waiting for
-- IMAP IDLE (Dovecot delays IDLE's EXISTS by about half a second). The
-- gateway keeps IDLE running, so a hook that fails costs only that delay.
--
-- dovecot.conf (see docs/dovecot/README.md):
--   mail_plugins = $mail_plugins mail_lua notify push_notification push_notification_lua
--   plugin {
--     push_notification_driver = lua:file=/etc/dovecot/mmgw-push.lua
--     mmgw_push_url = http://gateway.example.net:8081/hooks/mail/new
--     mmgw_push_token = <the gateway's mail.pushHook.token>
--   }
--
-- The body has the field names of Dovecot's OX driver:
--   {"user":"alice@example.net","event":"messageNew","folder":"INBOX",
--    "imap-uidvalidity":1700000000,"imap-uid":42}

local client = nil

local function json_string(s)
  s = tostring(s or "")
  s = s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

function dovecot_lua_notify_begin_txn(user)
  return {
    user = user.username,
    url = user:plugin_getenv("mmgw_push_url"),
    token = user:plugin_getenv("mmgw_push_token"),
    timeout = tonumber(user:plugin_getenv("mmgw_push_timeout_msecs")) or 1000,
    uid = nil,
    uid_validity = nil,
    event = nil,
  }
end

local function note(ctx, event, name)
  if event.mailbox ~= "INBOX" then return end
  -- One POST per transaction: the highest UID tells the gateway enough.
  if ctx.uid == nil or event.uid > ctx.uid then
    ctx.uid = event.uid
    ctx.uid_validity = event.uid_validity
    ctx.event = name
  end
end

function dovecot_lua_notify_event_message_new(ctx, event)
  note(ctx, event, "messageNew")
end

function dovecot_lua_notify_event_message_append(ctx, event)
  note(ctx, event, "messageAppend")
end

function dovecot_lua_notify_end_txn(ctx)
  if ctx.uid == nil or ctx.url == nil or ctx.url == "" then return end
  if client == nil then
    client = dovecot.http.client({ timeout = ctx.timeout, max_attempts = 1 })
  end
  local body = "{\"user\":" .. json_string(ctx.user)
    .. ",\"event\":" .. json_string(ctx.event)
    .. ",\"folder\":\"INBOX\""
    .. ",\"imap-uidvalidity\":" .. string.format("%d", ctx.uid_validity)
    .. ",\"imap-uid\":" .. string.format("%d", ctx.uid) .. "}"
  local request = client:request({ url = ctx.url, method = "POST" })
  request:add_header("content-type", "application/json")
  if ctx.token ~= nil and ctx.token ~= "" then
    request:add_header("authorization", "Bearer " .. ctx.token)
  end
  request:set_payload(body)
  local response = request:submit()
  local status = response:status()
  if status < 200 or status >= 300 then
    dovecot.i_warning("mmgw push hook: " .. ctx.url .. " answered " .. tostring(status))
  end
end
