"""The Lua scripts of scoped tokens (the tokens users make for third-party apps).

A token is a hash that Redis drops by itself once it has expired (plus the margin), with
two index entries: in its owner's set (``user-scoped-tokens:{user id}``, for the listing
and for deleting them all) and in the expiry set (``scoped-tokens:ends``, for the purge).
Reads unlink the entries of tokens Redis dropped. The key layout is in
``redis_scripts.py``, whose ``HEADER`` (``P``, ``MARGIN_MS``, ``NUL``) runs before each of
these scripts.
"""

from __future__ import annotations

from types import MappingProxyType

HELPERS = r"""
local TOKEN = P .. 'scoped-token:'
local BY_USER = P .. 'user-scoped-tokens:'
local ENDS = P .. 'scoped-tokens:ends'

-- The expiry index's member: the owner after a NUL, so an entry whose token Redis
-- dropped can be unlinked from the owner's set too.
local function member(id, user_id) return id .. NUL .. user_id end

local function split_member(m)
  local at = string.find(m, NUL, 1, true)
  return string.sub(m, 1, at - 1), string.sub(m, at + 1)
end

-- Delete a token and unlink it everywhere; 1 if the token was still there, 0 if only
-- index entries were left (Redis had expired it).
local function drop(id, user_id)
  local deleted = redis.call('DEL', TOKEN .. id)
  redis.call('ZREM', BY_USER .. user_id, id)
  redis.call('ZREM', ENDS, member(id, user_id))
  return deleted
end
"""

ADD_SCOPED_TOKEN = r"""
-- ARGV: id, user id, created_at, expires_at, then the token's field/value pairs.
local id, user_id, created_at, expires_at = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', P .. 'user:' .. user_id) == 0 then return 'no_user' end
local key = TOKEN .. id
if redis.call('EXISTS', key) == 1 then return 'scoped_token_exists' end
redis.call('HSET', key, unpack(ARGV, 5))
-- Validity is decided above the store by its clock; this only reclaims what nobody will
-- ask for again.
local deadline = math.ceil(tonumber(expires_at) * 1000) + MARGIN_MS
redis.call('PEXPIREAT', key, string.format('%.0f', deadline))
redis.call('ZADD', BY_USER .. user_id, created_at, id)
redis.call('ZADD', ENDS, expires_at, member(id, user_id))
return 'ok'
"""  # noqa: S105 (Lua, not a secret)

LIST_SCOPED_TOKENS = r"""
-- ARGV: user id, now. The user's tokens whose expires_at is after now, newest first
-- (created_at, then id, descending). Entries whose token Redis dropped are unlinked.
local user_id, now = ARGV[1], tonumber(ARGV[2])
local out, gone = {}, {}
for _, id in ipairs(redis.call('ZREVRANGE', BY_USER .. user_id, 0, -1)) do
  local rec = redis.call('HGETALL', TOKEN .. id)
  if #rec == 0 then
    gone[#gone + 1] = id
  else
    local ends = nil
    for i = 1, #rec, 2 do
      if rec[i] == 'expires_at' then ends = tonumber(rec[i + 1]) end
    end
    -- A token without a readable expiry is passed on: its decoding fails closed.
    if not ends or ends > now then out[#out + 1] = rec end
  end
end
for _, id in ipairs(gone) do drop(id, user_id) end
return out
"""

DELETE_SCOPED_TOKEN = r"""
-- ARGV: id[, owner]. 1 if the token was deleted; given an owner, only if it is theirs.
local id, owner = ARGV[1], ARGV[2]
local user_id = redis.call('HGET', TOKEN .. id, 'user_id')
if not user_id or (owner and owner ~= user_id) then return 0 end
return drop(id, user_id)
"""  # noqa: S105 (Lua, not a secret)

DELETE_USER_SCOPED_TOKENS = r"""
-- ARGV: user id. The ids of the tokens deleted.
local user_id = ARGV[1]
local deleted = {}
for _, id in ipairs(redis.call('ZRANGE', BY_USER .. user_id, 0, -1)) do
  if drop(id, user_id) == 1 then deleted[#deleted + 1] = id end
end
return deleted
"""

PURGE_SCOPED_TOKENS = r"""
-- ARGV: now, limit. Delete up to limit tokens whose expires_at is at or before now;
-- count those still there.
local batch = redis.call('ZRANGEBYSCORE', ENDS, '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local deleted = 0
for _, m in ipairs(batch) do deleted = deleted + drop(split_member(m)) end
return deleted
"""


#: Each script's text after the header, by name.
SCRIPTS = MappingProxyType(
    {
        name: HELPERS + body
        for name, body in {
            "add_scoped_token": ADD_SCOPED_TOKEN,
            "list_scoped_tokens": LIST_SCOPED_TOKENS,
            "delete_scoped_token": DELETE_SCOPED_TOKEN,
            "delete_user_scoped_tokens": DELETE_USER_SCOPED_TOKENS,
            "purge_scoped_tokens": PURGE_SCOPED_TOKENS,
        }.items()
    }
)
