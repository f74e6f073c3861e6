"""The Lua scripts of sessions and refresh families.

The two are indexed alike (``KINDS`` below: by user, by recency, by expiry) and share the
helpers that keep those indexes and the records' native expiry in step; the key layout
is in ``redis_scripts.py``, whose ``HEADER`` (``P``, ``MARGIN_MS``, ``NUL``) runs before
each of these scripts.
"""

from __future__ import annotations

from types import MappingProxyType

# Helpers for the scripts that change sessions and families. A script runs its whole text
# on every call, so the short ones (the session read above all) go without them.
HELPERS = r"""
-- The earlier of two stored times, as stored (see redis_scripts.py).
local function earlier(a, b)
  if tonumber(a) <= tonumber(b) then return a end
  return b
end

-- When Redis may drop a record by itself: after its later expiry and a margin, in
-- Unix milliseconds. Validity is decided above the store by its clock; this only
-- reclaims what nobody will ask for again.
local function deadline_ms(idle, absolute)
  return math.ceil(math.max(tonumber(idle), tonumber(absolute)) * 1000) + MARGIN_MS
end

-- An integer as command text (tostring would switch to exponent notation).
local function int(n) return string.format('%.0f', n) end

-- A field/value list (HGETALL's reply or ARGV pairs) as a table.
local function as_map(list)
  local map = {}
  for i = 1, #list, 2 do map[list[i]] = list[i + 1] end
  return map
end

local function slice(list, first, last)
  local out = {}
  for i = first, last do out[#out + 1] = list[i] end
  return out
end

-- Sessions and refresh families are indexed alike.
local KINDS = {
  session = {record = P .. 'session:', by_user = P .. 'user-sessions:',
             recent = P .. 'sessions:seen', ends = P .. 'sessions:ends',
             recent_field = 'last_seen_at'},
  family = {record = P .. 'family:', by_user = P .. 'user-families:',
            recent = P .. 'families:used', ends = P .. 'families:ends',
            recent_field = 'last_used_at'},
}

local function member(id, user_id) return id .. NUL .. user_id end

local function split_member(m)
  local at = string.find(m, NUL, 1, true)
  return string.sub(m, 1, at - 1), string.sub(m, at + 1)
end

-- Add or move a record's index entries; rec holds its stored fields.
local function index(kind, id, rec)
  local k = KINDS[kind]
  local m = member(id, rec.user_id)
  redis.call('ZADD', k.by_user .. rec.user_id, rec.created_at, id)
  redis.call('ZADD', k.recent, rec[k.recent_field], m)
  redis.call('ZADD', k.ends, earlier(rec.idle_expires_at, rec.absolute_expires_at), m)
end

-- Delete a record (a family with its tokens) and unlink it everywhere; 1 if the record
-- was still there, 0 if only index entries were left (Redis had expired it).
local function drop(kind, id, user_id)
  local k = KINDS[kind]
  if kind == 'family' then
    local tokens = P .. 'family-tokens:' .. id
    for _, hex in ipairs(redis.call('SMEMBERS', tokens)) do
      redis.call('DEL', P .. 'refresh:' .. hex)
    end
    redis.call('DEL', tokens)
  end
  local deleted = redis.call('DEL', k.record .. id)
  local m = member(id, user_id)
  redis.call('ZREM', k.by_user .. user_id, id)
  redis.call('ZREM', k.recent, m)
  redis.call('ZREM', k.ends, m)
  return deleted
end

-- Store a session (fields: its field/value list) in place of any record with its id.
local function write_session(hex, fields)
  local rec = as_map(fields)
  local key = P .. 'session:' .. hex
  local previous_owner = redis.call('HGET', key, 'user_id')
  if previous_owner and previous_owner ~= rec.user_id then
    drop('session', hex, previous_owner)
  end
  redis.call('DEL', key)
  redis.call('HSET', key, unpack(fields))
  redis.call('PEXPIREAT', key, int(deadline_ms(rec.idle_expires_at, rec.absolute_expires_at)))
  index('session', hex, rec)
end

local function user_exists(user_id)
  return redis.call('EXISTS', P .. 'user:' .. user_id) == 1
end
"""

# -- sessions ----------------------------------------------------------------------------

PUT_SESSION = r"""
-- ARGV: hex id, then the session's field/value pairs. The user is not looked up: beside
-- PostgreSQL (redis_url) this Redis holds sessions, and their users live there.
local fields = slice(ARGV, 2, #ARGV)
write_session(ARGV[1], fields)
return 'ok'
"""

GET_SESSION_AND_USER = r"""
-- ARGV: hex id. {session fields, user fields}, or nil if either is missing: what a
-- session-authenticated request needs, in one round trip.
local session = redis.call('HGETALL', P .. 'session:' .. ARGV[1])
local user_id = nil
for i = 1, #session, 2 do
  if session[i] == 'user_id' then user_id = session[i + 1] end
end
if not user_id then return nil end
local user = redis.call('HGETALL', P .. 'user:' .. user_id)
if #user == 0 then return nil end
return {session, user}
"""

TOUCH_SESSION = r"""
-- ARGV: hex id, last_seen_at, idle_expires_at. A missing session stays missing.
local hex, seen, idle = ARGV[1], ARGV[2], ARGV[3]
local key = P .. 'session:' .. hex
local rec = redis.call('HMGET', key, 'user_id', 'absolute_expires_at')
if not rec[1] then return 0 end
redis.call('HSET', key, 'last_seen_at', seen, 'idle_expires_at', idle)
redis.call('PEXPIREAT', key, int(deadline_ms(idle, rec[2])))
local m = member(hex, rec[1])
redis.call('ZADD', KINDS.session.recent, seen, m)
redis.call('ZADD', KINDS.session.ends, earlier(idle, rec[2]), m)
return 1
"""

RENEW_SESSION = r"""
-- ARGV: old hex id, old_expires_at, new hex id, then the new session's field/value
-- pairs. Continue the old session under the new id, once: only a record never renewed
-- and of an older privilege epoch qualifies, so of racing renewals one wins.
local old_hex, cut, new_hex = ARGV[1], ARGV[2], ARGV[3]
local fields = slice(ARGV, 4, #ARGV)
local new = as_map(fields)
local old = P .. 'session:' .. old_hex
local cur = redis.call('HMGET', old, 'user_id', 'roles_changed_at', 'renewed_to',
                       'idle_expires_at', 'absolute_expires_at')
if not cur[1] or cur[3] or tonumber(cur[2]) >= tonumber(new.roles_changed_at) then
  return 'refused'
end
local idle, absolute = earlier(cur[4], cut), earlier(cur[5], cut)
redis.call('HSET', old, 'roles_changed_at', new.roles_changed_at, 'renewed_to', new.id_hash,
           'idle_expires_at', idle, 'absolute_expires_at', absolute)
redis.call('PEXPIREAT', old, int(deadline_ms(idle, absolute)))
redis.call('ZADD', KINDS.session.ends, earlier(idle, absolute), member(old_hex, cur[1]))
write_session(new_hex, fields)
return 'ok'
"""

# -- what sessions and families share (ARGV[1]: 'session' or 'family') --------------------

DELETE_ONE = r"""
-- ARGV: kind, id. 1 if a record was deleted.
local owner = redis.call('HGET', KINDS[ARGV[1]].record .. ARGV[2], 'user_id')
if not owner then return 0 end
return drop(ARGV[1], ARGV[2], owner)
"""

DELETE_OF_USER = r"""
-- ARGV: kind, user id[, id to keep]. The ids of the records deleted.
local kind, user_id, keep = ARGV[1], ARGV[2], ARGV[3]
local deleted = {}
for _, id in ipairs(redis.call('ZRANGE', KINDS[kind].by_user .. user_id, 0, -1)) do
  if id ~= keep and drop(kind, id, user_id) == 1 then deleted[#deleted + 1] = id end
end
return deleted
"""

DELETE_BATCH = r"""
-- ARGV: kind, batch size. Delete the first records of the expiry index:
-- {records deleted, index entries consumed}; the caller repeats until none are left, so
-- no single script blocks Redis for long.
local kind = ARGV[1]
local batch = redis.call('ZRANGE', KINDS[kind].ends, 0, tonumber(ARGV[2]) - 1)
local deleted = 0
for _, m in ipairs(batch) do deleted = deleted + drop(kind, split_member(m)) end
return {deleted, #batch}
"""

LIST_OF_USER = r"""
-- ARGV: kind, user id. The user's records, newest first (created_at, then id,
-- descending). Entries whose record Redis expired are unlinked on the way.
local kind, user_id = ARGV[1], ARGV[2]
local k = KINDS[kind]
local out, gone = {}, {}
for _, id in ipairs(redis.call('ZREVRANGE', k.by_user .. user_id, 0, -1)) do
  local rec = redis.call('HGETALL', k.record .. id)
  if #rec == 0 then gone[#gone + 1] = id else out[#out + 1] = rec end
end
for _, id in ipairs(gone) do drop(kind, id, user_id) end
return out
"""

LIST_LIVE = r"""
-- ARGV: kind, now, limit, offset. Records whose both expiries are after now, most
-- recent first, ties by id descending: the recency index is walked in batches and each
-- entry checked against the expiry index, so the cost is that of the entries passed
-- (as for SQLite's index walk), and expired ones only wait for the next purge.
local kind, now = ARGV[1], tonumber(ARGV[2])
local wanted, offset = tonumber(ARGV[3]) + tonumber(ARGV[4]), tonumber(ARGV[4])
local k = KINDS[kind]
local out, gone, live, start = {}, {}, 0, 0
while live < wanted do
  local batch = redis.call('ZREVRANGE', k.recent, start, start + 255)
  if #batch == 0 then break end
  for _, m in ipairs(batch) do
    local ends = redis.call('ZSCORE', k.ends, m)
    if ends and tonumber(ends) > now then
      local id = split_member(m)
      local rec = redis.call('HGETALL', k.record .. id)
      if #rec == 0 then
        gone[#gone + 1] = m
      else
        live = live + 1
        if live > offset then out[#out + 1] = rec end
        if live == wanted then break end
      end
    end
  end
  start = start + 256
end
for _, m in ipairs(gone) do drop(kind, split_member(m)) end
return out
"""

PURGE = r"""
-- ARGV: kind, now, limit. Delete up to limit records whose idle or absolute expiry is
-- at or before now (their expiry-index score); count those still there.
local kind = ARGV[1]
local batch = redis.call('ZRANGEBYSCORE', KINDS[kind].ends, '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
local deleted = 0
for _, m in ipairs(batch) do deleted = deleted + drop(kind, split_member(m)) end
return deleted
"""

# -- refresh families --------------------------------------------------------------------

CREATE_FAMILY = r"""
-- ARGV: family id, hex hash of the first token, number of family fields (n), the
-- family's n field/value items, the token's field/value pairs. All or nothing.
local id, hex, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local family_fields = slice(ARGV, 4, 3 + n)
local token_fields = slice(ARGV, 4 + n, #ARGV)
local family = as_map(family_fields)
if not user_exists(family.user_id) then return 'no_user' end
if redis.call('EXISTS', P .. 'family:' .. id) == 1 then return 'family_exists' end
if redis.call('EXISTS', P .. 'refresh:' .. hex) == 1 then return 'token_exists' end
local deadline = int(deadline_ms(family.idle_expires_at, family.absolute_expires_at))
redis.call('HSET', P .. 'family:' .. id, unpack(family_fields))
redis.call('HSET', P .. 'refresh:' .. hex, unpack(token_fields))
redis.call('SADD', P .. 'family-tokens:' .. id, hex)
for _, key in ipairs({'family:' .. id, 'refresh:' .. hex, 'family-tokens:' .. id}) do
  redis.call('PEXPIREAT', P .. key, deadline)
end
index('family', id, family)
return 'ok'
"""

SPEND_REFRESH_TOKEN = r"""
-- ARGV: hex hash of the token, hex hash of the successor, last_used_at, idle_expires_at,
-- then the successor's field/value pairs. The compare-and-set of rotation (T8): only an
-- unspent token is spent, so of racing spends exactly one returns 'ok'.
local hex, next_hex, used, idle = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local fields = slice(ARGV, 5, #ARGV)
local successor = as_map(fields)
local token = P .. 'refresh:' .. hex
local cur = redis.call('HMGET', token, 'family_id', 'spent_at')
if not cur[1] or cur[2] then return 'refused' end
if cur[1] ~= successor.family_id then return 'other_family' end
if redis.call('EXISTS', P .. 'refresh:' .. next_hex) == 1 then return 'token_exists' end
local id = cur[1]
local family = P .. 'family:' .. id
local fam = redis.call('HMGET', family, 'user_id', 'absolute_expires_at')
if not fam[1] then return 'refused' end
redis.call('HSET', token, 'spent_at', successor.created_at, 'successor_hash', successor.hash)
redis.call('HSET', P .. 'refresh:' .. next_hex, unpack(fields))
redis.call('SADD', P .. 'family-tokens:' .. id, next_hex)
redis.call('HSET', family, 'last_used_at', used, 'idle_expires_at', idle)
local m = member(id, fam[1])
redis.call('ZADD', KINDS.family.recent, used, m)
redis.call('ZADD', KINDS.family.ends, earlier(idle, fam[2]), m)
-- Everything of the family expires together. The deadline only moves if the idle expiry
-- passes the absolute one (Twofold caps it there), and then every token moves with it.
local current = redis.call('PEXPIRETIME', family)
local deadline = math.max(deadline_ms(idle, fam[2]), current)
local keys = {P .. 'refresh:' .. next_hex}
if deadline > current then
  keys = {family, P .. 'family-tokens:' .. id}
  for _, each in ipairs(redis.call('SMEMBERS', P .. 'family-tokens:' .. id)) do
    keys[#keys + 1] = P .. 'refresh:' .. each
  end
end
for _, key in ipairs(keys) do redis.call('PEXPIREAT', key, int(deadline)) end
return 'ok'
"""  # noqa: S105 (Lua, not a secret)


#: Each script's text after the header, by name: with the helpers where it needs them.
SCRIPTS = MappingProxyType(
    {
        name: HELPERS + body
        for name, body in {
            "put_session": PUT_SESSION,
            "touch_session": TOUCH_SESSION,
            "renew_session": RENEW_SESSION,
            "delete_one": DELETE_ONE,
            "delete_of_user": DELETE_OF_USER,
            "delete_batch": DELETE_BATCH,
            "list_of_user": LIST_OF_USER,
            "list_live": LIST_LIVE,
            "purge": PURGE,
            "create_family": CREATE_FAMILY,
            "spend_refresh_token": SPEND_REFRESH_TOKEN,
        }.items()
    }
    | {"get_session_and_user": GET_SESSION_AND_USER}
)
