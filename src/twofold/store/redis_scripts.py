"""The Redis store's key layout and its Lua scripts.

Every multi-key change is one script: Redis runs a script to its end before any other
command, so a compare-and-set, a unique check or a record with its index entries never
races (SECURITY.md T8: of two spends of one token, one wins). Scripts take ids in ARGV and
build key names from them (``HEADER`` below and the ``HELPERS`` of
``redis_session_scripts.py``, which holds the scripts of sessions and refresh families,
and of ``redis_scoped_token_scripts.py``), the one place besides ``*_key`` below that
knows the layout (all under ``twofold:``)::

    user:{id}                 hash    a user
    user-email:{email}        string  its id (the unique index of e-mail addresses)
    users                     zset    created_at -> id
    session:{hex id_hash}     hash    a session, expiring natively (PEXPIREAT)
    user-sessions:{user id}   zset    created_at -> hex id_hash
    sessions:seen             zset    last_seen_at -> hex id_hash NUL user id
    sessions:ends             zset    min(idle, absolute expiry) -> same member
    family:{id}               hash    a refresh family, expiring natively
    family-tokens:{id}        set     hex hashes of the family's tokens, expiring with it
    refresh:{hex hash}        hash    a refresh token, expiring with its family
    user-families:{user id}   zset    created_at -> family id
    families:used             zset    last_used_at -> family id NUL user id
    families:ends             zset    min(idle, absolute expiry) -> same member
    revocations:seq           string  the last seq handed out (never reset)
    revocations               zset    seq -> "{seq}:{JSON [kind, subject, at, expires_at]}"
    revocations:ends          zset    expires_at -> same member
    audit:seq                 string  the last audit seq handed out
    audit:event:{seq}         string  JSON of the event (without its seq)
    audit:all | audit:kind:{kind} | audit:user:{user id}
    audit:user-kind:{len(kind)}:{kind}:{user id}
                              zsets   seq -> seq, one per filter of list_audit
    client:{id}               hash    a client
    client-name:{name}        string  its id (the unique index of names)
    clients                   zset    created_at -> id
    signing-key:{kid}         hash    a signing key
    signing-keys              zset    created_at -> kid
    login-failures:{key}      hash    failures, last_failure_at of a throttled key (an
                                      account, an address...), expiring natively
    scoped-token:{id}         hash    a scoped token, expiring natively
    user-scoped-tokens:{user id}
                              zset    created_at -> scoped token id
    scoped-tokens:ends        zset    expires_at -> id NUL user id

and the pub/sub channel ``twofold:revocations``. Index members of the global session,
family and scoped-token sets carry the owner after a NUL (which sorts before any other
byte, so ties still order by id): an entry whose record Redis expired can be unlinked
from the owner's set too. Times are stored as Python's ``repr`` of the float, which
round-trips exactly; Lua compares them with ``tonumber`` and never writes a number back
through ``tostring`` (14 digits).

Redis Cluster is not supported: scripts reach keys they derive from stored data (a
session's user, a family's tokens), which a cluster could place on another node.
"""

from __future__ import annotations

from types import MappingProxyType

from twofold.store import redis_scoped_token_scripts, redis_session_scripts

PREFIX = "twofold:"
CHANNEL = PREFIX + "revocations"
#: Seconds Redis keeps a record past its later expiry, for clock skew between the hosts.
EXPIRY_MARGIN = 60


def user_key(user_id: str) -> str:
    return f"{PREFIX}user:{user_id}"


def session_key(id_hash: bytes) -> str:
    return f"{PREFIX}session:{id_hash.hex()}"


def family_key(family_id: str) -> str:
    return f"{PREFIX}family:{family_id}"


def token_key(token_hash: bytes) -> str:
    return f"{PREFIX}refresh:{token_hash.hex()}"


def client_key(client_id: str) -> str:
    return f"{PREFIX}client:{client_id}"


def signing_key_key(kid: str) -> str:
    return f"{PREFIX}signing-key:{kid}"


def failures_key(key: str) -> str:
    return f"{PREFIX}login-failures:{key}"


def scoped_token_key(token_id: str) -> str:
    return f"{PREFIX}scoped-token:{token_id}"


USERS = PREFIX + "users"
CLIENTS = PREFIX + "clients"
SIGNING_KEYS = PREFIX + "signing-keys"

HEADER = f"""
local P = '{PREFIX}'
local MARGIN_MS = {EXPIRY_MARGIN * 1000}
local NUL = '\\0'
"""

# -- users -------------------------------------------------------------------------------

ADD_USER = r"""
-- ARGV: id, e-mail, created_at, then the user's field/value pairs.
local id, email = ARGV[1], ARGV[2]
if redis.call('EXISTS', P .. 'user:' .. id, P .. 'user-email:' .. email) > 0 then
  return 'conflict'
end
redis.call('HSET', P .. 'user:' .. id, unpack(ARGV, 4))
redis.call('SET', P .. 'user-email:' .. email, id)
redis.call('ZADD', P .. 'users', ARGV[3], id)
return 'ok'
"""

GET_USER_BY_EMAIL = r"""
-- ARGV: e-mail. The user's fields, or nil.
local id = redis.call('GET', P .. 'user-email:' .. ARGV[1])
if not id then return nil end
return redis.call('HGETALL', P .. 'user:' .. id)
"""

UPDATE_EXISTING = r"""
-- KEYS[1]: a record. ARGV: how many fields to remove, their names, then field/value
-- pairs to set. Only an existing record changes (HSET alone would create a stub).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local removed = tonumber(ARGV[1])
if removed > 0 then redis.call('HDEL', KEYS[1], unpack(ARGV, 2, removed + 1)) end
if #ARGV > removed + 1 then redis.call('HSET', KEYS[1], unpack(ARGV, removed + 2)) end
return 1
"""

REHASH_PASSWORD = r"""
-- ARGV: user id, old hash, new hash. The compare-and-set: a password change that landed
-- first is never overwritten by a stale rehash.
local key = P .. 'user:' .. ARGV[1]
if redis.call('HGET', key, 'password_hash') ~= ARGV[2] then return 0 end
redis.call('HSET', key, 'password_hash', ARGV[3])
return 1
"""  # noqa: S105 (Lua, not a secret)

SET_ROLES = r"""
-- ARGV: user id, roles (JSON), changed_at. The epoch only moves forward, even for two
-- changes in the same instant: at least 1 ms past the current one.
local key = P .. 'user:' .. ARGV[1]
local current = redis.call('HGET', key, 'roles_changed_at')
if not current then return 0 end
local epoch = ARGV[3]
local floor = tonumber(current) + 0.001
if tonumber(epoch) < floor then epoch = string.format('%.17g', floor) end
redis.call('HSET', key, 'roles', ARGV[2], 'roles_changed_at', epoch)
return 1
"""

SET_EMAIL = r"""
-- ARGV: user id, new e-mail. The user's field and the e-mail index move together:
-- 'conflict' if another user has the address, 0 if there is no such user, else 1 (also
-- when the address is the user's already). The old address is free afterwards.
local id, email = ARGV[1], ARGV[2]
local key = P .. 'user:' .. id
local old = redis.call('HGET', key, 'email')
if not old then return 0 end
if old == email then return 1 end
local owner = redis.call('GET', P .. 'user-email:' .. email)
if owner and owner ~= id then return 'conflict' end
redis.call('SET', P .. 'user-email:' .. email, id)
if redis.call('GET', P .. 'user-email:' .. old) == id then
  redis.call('DEL', P .. 'user-email:' .. old)
end
redis.call('HSET', key, 'email', email)
return 1
"""

LIST_INDEX = r"""
-- KEYS[1]: an index (zset of ids). ARGV: record key prefix, first and last rank.
-- The records in index order.
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], ARGV[2], ARGV[3])) do
  local rec = redis.call('HGETALL', ARGV[1] .. id)
  if #rec > 0 then out[#out + 1] = rec end
end
return out
"""

# -- revocations -------------------------------------------------------------------------

APPEND_REVOCATION = r"""
-- ARGV: the entry as JSON [kind, subject, at, expires_at], expires_at. Number it, store
-- it and tell listeners, in one step: entries appear strictly in seq order.
local seq = string.format('%d', redis.call('INCR', P .. 'revocations:seq'))
local m = seq .. ':' .. ARGV[1]
redis.call('ZADD', P .. 'revocations', seq, m)
redis.call('ZADD', P .. 'revocations:ends', ARGV[2], m)
redis.call('PUBLISH', P .. 'revocations', seq)
return tonumber(seq)
"""

REVOCATIONS_AFTER = r"""
-- ARGV: seq, now, limit. Up to limit entries after seq still in force at now, in seq
-- order; expired ones are skipped without shortening the answer.
local after, now, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
while #out < limit do
  local batch = redis.call('ZRANGEBYSCORE', P .. 'revocations', '(' .. after, '+inf',
                           'WITHSCORES', 'LIMIT', 0, 256)
  if #batch == 0 then break end
  for i = 1, #batch, 2 do
    local ends = redis.call('ZSCORE', P .. 'revocations:ends', batch[i])
    if not ends or tonumber(ends) > now then
      out[#out + 1] = batch[i]
      if #out == limit then break end
    end
    after = batch[i + 1]
  end
end
return out
"""

PURGE_REVOCATIONS = r"""
-- ARGV: now, limit. Delete up to limit entries expired at or before now. The seq counter
-- is a key of its own, so a purge never hands out a seq again.
local batch = redis.call('ZRANGEBYSCORE', P .. 'revocations:ends', '-inf', ARGV[1],
                         'LIMIT', 0, ARGV[2])
for _, m in ipairs(batch) do
  redis.call('ZREM', P .. 'revocations', m)
  redis.call('ZREM', P .. 'revocations:ends', m)
end
return #batch
"""

# -- audit -------------------------------------------------------------------------------

AUDIT_PRELUDE = r"""
local function audit_index(user_id, kind)
  if user_id and kind then
    return P .. 'audit:user-kind:' .. #kind .. ':' .. kind .. ':' .. user_id
  elseif user_id then return P .. 'audit:user:' .. user_id
  elseif kind then return P .. 'audit:kind:' .. kind end
  return P .. 'audit:all'
end
"""

APPEND_AUDIT = r"""
-- ARGV: the event as JSON, its kind, then the distinct user ids it is about or by.
-- One index per filter of list_audit, so every listing is a range read.
local kind = ARGV[2]
local seq = string.format('%d', redis.call('INCR', P .. 'audit:seq'))
redis.call('SET', P .. 'audit:event:' .. seq, ARGV[1])
redis.call('ZADD', audit_index(nil, nil), seq, seq)
redis.call('ZADD', audit_index(nil, kind), seq, seq)
for i = 3, #ARGV do
  redis.call('ZADD', audit_index(ARGV[i], nil), seq, seq)
  redis.call('ZADD', audit_index(ARGV[i], kind), seq, seq)
end
return tonumber(seq)
"""

LIST_AUDIT = r"""
-- ARGV: highest seq bound ('(n' or '+inf'), limit, user id or '', kind or '' (with a
-- flag each: '1' when given). Newest first: {seq, JSON, seq, JSON, ...}.
local user_id, kind = nil, nil
if ARGV[3] == '1' then user_id = ARGV[4] end
if ARGV[5] == '1' then kind = ARGV[6] end
local seqs = redis.call('ZREVRANGEBYSCORE', audit_index(user_id, kind), ARGV[1], '-inf',
                        'LIMIT', 0, ARGV[2])
local out = {}
for _, seq in ipairs(seqs) do
  local event = redis.call('GET', P .. 'audit:event:' .. seq)
  if event then
    out[#out + 1] = seq
    out[#out + 1] = event
  end
end
return out
"""

# -- failed logins -----------------------------------------------------------------------

RECORD_FAILURE = r"""
-- ARGV: key, now, since (now - forget_after), forget_after. Count one failure at now and
-- return the new count: 1 unless the last one is at or after since. Redis drops the
-- counter by itself once it is stale (plus the margin): nothing purges. The expiry is
-- relative (PEXPIRE), so an instance whose clock lags Redis's cannot make it vanish.
local key = P .. 'login-failures:' .. ARGV[1]
local stored = redis.call('HMGET', key, 'failures', 'last_failure_at')
local failures = 1
if stored[2] and tonumber(stored[2]) >= tonumber(ARGV[3]) then
  failures = tonumber(stored[1]) + 1
end
redis.call('HSET', key, 'failures', string.format('%d', failures), 'last_failure_at', ARGV[2])
local lifetime_ms = math.ceil(tonumber(ARGV[4]) * 1000) + MARGIN_MS
redis.call('PEXPIRE', key, string.format('%.0f', lifetime_ms))
return failures
"""

GET_FAILURES = r"""
-- ARGV: keys. Each one's {failures, last_failure_at}, both nil if it has none; the
-- caller drops the stale ones (a counter may outlive its window by the margin).
local out = {}
for i = 1, #ARGV do
  out[i] = redis.call('HMGET', P .. 'login-failures:' .. ARGV[i], 'failures',
                      'last_failure_at')
end
return out
"""

# -- clients and signing keys ------------------------------------------------------------

ADD_CLIENT = r"""
-- ARGV: id, name, created_at, then the client's field/value pairs.
local id, name = ARGV[1], ARGV[2]
if redis.call('EXISTS', P .. 'client:' .. id, P .. 'client-name:' .. name) > 0 then
  return 'conflict'
end
redis.call('HSET', P .. 'client:' .. id, unpack(ARGV, 4))
redis.call('SET', P .. 'client-name:' .. name, id)
redis.call('ZADD', P .. 'clients', ARGV[3], id)
return 'ok'
"""

DELETE_CLIENT = r"""
-- ARGV: id. 1 if the client was deleted, with its name.
local key = P .. 'client:' .. ARGV[1]
local name = redis.call('HGET', key, 'name')
if not name then return 0 end
redis.call('DEL', key, P .. 'client-name:' .. name)
redis.call('ZREM', P .. 'clients', ARGV[1])
return 1
"""

ADD_KEY = r"""
-- ARGV: kid, created_at, then the key's field/value pairs.
local key = P .. 'signing-key:' .. ARGV[1]
if redis.call('EXISTS', key) == 1 then return 'conflict' end
redis.call('HSET', key, unpack(ARGV, 3))
redis.call('ZADD', P .. 'signing-keys', ARGV[2], ARGV[1])
return 'ok'
"""


#: Each script's full text, by name.
SCRIPTS = MappingProxyType(
    {
        name: HEADER + body
        for name, body in {
            "add_user": ADD_USER,
            "get_user_by_email": GET_USER_BY_EMAIL,
            "update_existing": UPDATE_EXISTING,
            "rehash_password": REHASH_PASSWORD,
            "set_roles": SET_ROLES,
            "set_email": SET_EMAIL,
            "list_index": LIST_INDEX,
            "append_revocation": APPEND_REVOCATION,
            "revocations_after": REVOCATIONS_AFTER,
            "purge_revocations": PURGE_REVOCATIONS,
            "record_failure": RECORD_FAILURE,
            "get_failures": GET_FAILURES,
            "append_audit": AUDIT_PRELUDE + APPEND_AUDIT,
            "list_audit": AUDIT_PRELUDE + LIST_AUDIT,
            "add_client": ADD_CLIENT,
            "delete_client": DELETE_CLIENT,
            "add_key": ADD_KEY,
            **redis_session_scripts.SCRIPTS,
            **redis_scoped_token_scripts.SCRIPTS,
        }.items()
    }
)
