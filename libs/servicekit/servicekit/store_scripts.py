"""The Lua side of the store: every write is one of these scripts, so that the
compare-and-set, the write, the index updates and the resourceVersion bump
happen in one atomic step inside Redis.

Owns only the Lua sources and their calling convention; the Python side that
builds the arguments and reads the replies is servicekit.store. The two must
change together (the stored hash fields are described in store.py's module
docstring).

Calling convention, shared by every write script (all scripts take a batch):

    KEYS[1]   the global resourceVersion counter (podbus:rv)
    ARGV[1]   node index prefix (podbus:idx:pod:node:)
    ARGV[2]   now, in Unix seconds (deletionTimestamp = now + grace)
    ARGV[3]   the operations: ONE msgpack array of strings, STRIDE_* per
              operation: object key, kind index, namespace index ("" for
              cluster-scoped kinds), then the operation's own arguments.

Why one msgpack argument rather than thousands of ARGV entries: redis-py
packs every argument in Python (a couple of microseconds each), while
msgspec encodes the whole batch in one C call and Lua's cmsgpack unpacks it
in one.

Replies are a list with one entry per operation: for creates the new
resourceVersion (an integer); for the other writes a snapshot
`{code, v, g, R, M, I, D, P, T, n, old_n}` where code is M (modified),
D (deleted: the fields are those before removal, v the deletion's
resourceVersion) or N (nothing changed); or an error string `NotFound`,
`AlreadyExists`, `Conflict:<why>`, `Invalid:<why>`.

Object and index keys travel inside the payload, not in KEYS: the scripts
are for standalone Redis or Sentinel, which is what podbus targets (a Redis
Cluster would need one hash tag for all podbus keys).
"""

from __future__ import annotations

# Fields of the per-object hash returned in a snapshot, in this order.
SNAPSHOT_FIELDS = ("v", "g", "R", "M", "I", "D", "P", "T", "n")

_PRELUDE = r"""
local RV = KEYS[1]
local NODE_IDX = ARGV[1]
local NOW = tonumber(ARGV[2])
local A = cmsgpack.unpack(ARGV[3])

local function snapshot(code, key, old_n, rv)
  local r = redis.call('HMGET', key, 'v', 'g', 'R', 'M', 'I', 'D', 'P', 'T', 'n')
  if rv then r[1] = tostring(rv) end
  return {code, r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], old_n or r[9]}
end

local function unindex(key, kidx, nsidx, n)
  redis.call('SREM', kidx, key)
  if nsidx ~= '' then redis.call('SREM', nsidx, key) end
  if n and n ~= '' then redis.call('SREM', NODE_IDX .. n, key) end
end

local function remove(key, kidx, nsidx)
  local n = redis.call('HGET', key, 'n')
  local rv = redis.call('INCR', RV)
  local r = snapshot('D', key, nil, rv)
  redis.call('DEL', key)
  unindex(key, kidx, nsidx, n)
  return r
end

local function move_node(key, old_n, new_n)
  redis.call('SREM', NODE_IDX .. old_n, key)
  redis.call('SADD', NODE_IDX .. new_n, key)
end

-- RFC 3339 UTC timestamp of Unix seconds t (Howard Hinnant's civil_from_days;
-- Redis' Lua has no os.date).
local function rfc3339(t)
  local secs = t % 86400
  local days = (t - secs) / 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02dZ', y, m, d,
    math.floor(secs / 3600), math.floor((secs % 3600) / 60), secs % 60)
end

-- The metadata entries a deletion adds, as a msgpack map.
local function deletion_part(grace)
  return '\130' .. cmsgpack.pack('deletionTimestamp') .. cmsgpack.pack(rfc3339(NOW + grace))
    .. cmsgpack.pack('deletionGracePeriodSeconds') .. cmsgpack.pack(grace)
end
"""

# create: keys, then R M I P T n f z e u  (n: node token for pods, "" otherwise)
STRIDE_CREATE = 13
CREATE = (
    _PRELUDE
    + r"""
local out = {}
for i = 1, #A / 13 do
  local a = 1 + (i - 1) * 13
  local key, kidx, nsidx = A[a], A[a + 1], A[a + 2]
  a = a + 3
  if redis.call('EXISTS', key) == 1 then
    out[i] = 'AlreadyExists'
  else
    local rv = redis.call('INCR', RV)
    local n = A[a + 5]
    redis.call('HSET', key, 'v', rv, 'g', 1, 'R', A[a], 'M', A[a + 1], 'I', A[a + 2],
      'D', '', 'P', A[a + 3], 'T', A[a + 4], 'n', n, 'f', A[a + 6], 'z', A[a + 7],
      'e', A[a + 8], 'u', A[a + 9], 'x', '')
    redis.call('SADD', kidx, key)
    if nsidx ~= '' then redis.call('SADD', nsidx, key) end
    if n ~= '' then redis.call('SADD', NODE_IDX .. n, key) end
    out[i] = rv
  end
end
return out
"""
)

# update (spec + metadata): keys, then expected_rv uid R M P n f e
STRIDE_UPDATE = 11
UPDATE = (
    _PRELUDE
    + r"""
local out = {}
for i = 1, #A / 11 do
  local a = 1 + (i - 1) * 11
  local key, kidx, nsidx = A[a], A[a + 1], A[a + 2]
  a = a + 3
  local cur = redis.call('HMGET', key, 'v', 'u', 'g', 'P', 'n', 'D', 'x')
  local new_n = A[a + 5]
  if not cur[1] then
    out[i] = 'NotFound'
  elseif A[a] ~= '' and A[a] ~= cur[1] then
    out[i] = 'Conflict:the object has been modified (resourceVersion ' .. A[a] .. ' is not ' .. cur[1] .. ')'
  elseif A[a + 1] ~= '' and A[a + 1] ~= cur[2] then
    out[i] = 'Conflict:uid ' .. A[a + 1] .. ' does not match the stored ' .. cur[2]
  elseif cur[5] ~= '' and cur[5] ~= '_' and new_n ~= cur[5] then
    out[i] = 'Invalid:spec.nodeName: Invalid value: "' .. new_n .. '": field is immutable once set (bound to ' .. cur[5] .. ')'
  elseif cur[6] ~= '' and cur[7] == '0' and A[a + 6] == '0' then
    -- being deleted, grace over, last finalizer gone: the object goes now
    out[i] = remove(key, kidx, nsidx)
  else
    local g = tonumber(cur[3])
    if A[a + 4] ~= cur[4] then g = g + 1 end
    if cur[5] ~= '' and new_n ~= cur[5] then move_node(key, cur[5], new_n) end
    local rv = redis.call('INCR', RV)
    redis.call('HSET', key, 'v', rv, 'g', g, 'R', A[a + 2], 'M', A[a + 3], 'P', A[a + 4],
      'n', new_n, 'f', A[a + 6], 'e', A[a + 7])
    out[i] = snapshot('M', key, cur[5])
  end
end
return out
"""
)

# update_status: keys, then expected_rv uid T z
STRIDE_STATUS = 7
UPDATE_STATUS = (
    _PRELUDE
    + r"""
local out = {}
for i = 1, #A / 7 do
  local a = 1 + (i - 1) * 7
  local key, kidx, nsidx = A[a], A[a + 1], A[a + 2]
  a = a + 3
  local cur = redis.call('HMGET', key, 'v', 'u')
  if not cur[1] then
    out[i] = 'NotFound'
  elseif A[a] ~= '' and A[a] ~= cur[1] then
    out[i] = 'Conflict:the object has been modified (resourceVersion ' .. A[a] .. ' is not ' .. cur[1] .. ')'
  elseif A[a + 1] ~= '' and A[a + 1] ~= cur[2] then
    out[i] = 'Conflict:uid ' .. A[a + 1] .. ' does not match the stored ' .. cur[2]
  else
    local rv = redis.call('INCR', RV)
    redis.call('HSET', key, 'v', rv, 'T', A[a + 2], 'z', A[a + 3])
    out[i] = snapshot('M', key)
  end
end
return out
"""
)

# delete: keys, then expected_rv grace ("" = the pod's terminationGracePeriodSeconds)
# A pod bound to a node, not in a terminal phase, with grace > 0 is marked
# (deletionTimestamp = now + grace); so is any object with finalizers. All else
# is removed. A repeated delete may only shorten the grace period.
STRIDE_DELETE = 5
DELETE = (
    _PRELUDE
    + r"""
local out = {}
for i = 1, #A / 5 do
  local a = 1 + (i - 1) * 5
  local key, kidx, nsidx = A[a], A[a + 1], A[a + 2]
  a = a + 3
  local cur = redis.call('HMGET', key, 'v', 'n', 'e', 'D', 'x', 'f', 'z')
  if not cur[1] then
    out[i] = 'NotFound'
  elseif A[a] ~= '' and A[a] ~= cur[1] then
    out[i] = 'Conflict:the object has been modified (resourceVersion ' .. A[a] .. ' is not ' .. cur[1] .. ')'
  else
    local grace = 0
    local n = cur[2]
    if n ~= '' and n ~= '_' and cur[7] ~= '1' then
      if A[a + 1] ~= '' then grace = tonumber(A[a + 1]) else grace = tonumber(cur[3]) or 0 end
      if grace < 0 then grace = 0 end
    end
    local marked = cur[4] ~= ''
    if marked and grace >= tonumber(cur[5]) and (grace > 0 or cur[6] == '1') then
      out[i] = snapshot('N', key)
    elseif grace == 0 and cur[6] ~= '1' then
      out[i] = remove(key, kidx, nsidx)
    else
      local rv = redis.call('INCR', RV)
      redis.call('HSET', key, 'v', rv, 'D', deletion_part(grace), 'x', grace)
      out[i] = snapshot('M', key)
    end
  end
end
return out
"""
)

# bind: keys, then expected_rv node  (pods only; sets spec.nodeName if unbound).
# Optional fencing: ARGV[4] a key holding the current leader term's token,
# ARGV[5] the binder's token; when they differ nothing is bound (a leader
# whose term is over must not bind, even if its lease ran out mid-batch).
STRIDE_BIND = 5
BIND = (
    _PRELUDE
    + r"""
local out = {}
if ARGV[4] and ARGV[4] ~= '' then
  local current = redis.call('GET', ARGV[4])
  if current ~= ARGV[5] then
    for i = 1, #A / 5 do
      out[i] = 'Conflict:fenced: leader token ' .. ARGV[5] .. ' is not the current ' .. tostring(current)
    end
    return out
  end
end
for i = 1, #A / 5 do
  local a = 1 + (i - 1) * 5
  local key, kidx, nsidx = A[a], A[a + 1], A[a + 2]
  a = a + 3
  local cur = redis.call('HMGET', key, 'v', 'n', 'D')
  if not cur[1] then
    out[i] = 'NotFound'
  elseif cur[2] == '' then
    out[i] = 'Invalid:only pods can be bound to a node'
  elseif A[a] ~= '' and A[a] ~= cur[1] then
    out[i] = 'Conflict:the object has been modified (resourceVersion ' .. A[a] .. ' is not ' .. cur[1] .. ')'
  elseif cur[2] ~= '_' then
    out[i] = 'Conflict:pod is already assigned to node "' .. cur[2] .. '"'
  elseif cur[3] ~= '' then
    out[i] = 'Conflict:pod is being deleted'
  else
    move_node(key, '_', A[a + 1])
    local rv = redis.call('INCR', RV)
    redis.call('HSET', key, 'v', rv, 'n', A[a + 1])
    out[i] = snapshot('M', key, '_')
  end
end
return out
"""
)

# list: KEYS[1] rv counter, KEYS[2..] index sets (intersected when several).
# Reply: {rv, then the snapshot fields of every object, flat}.
LIST = r"""
local members
if #KEYS == 2 then
  members = redis.call('SMEMBERS', KEYS[2])
else
  local sets = {}
  for i = 2, #KEYS do sets[#sets + 1] = KEYS[i] end
  members = redis.call('SINTER', unpack(sets))
end
local out = {tonumber(redis.call('GET', KEYS[1]) or '0')}
for _, key in ipairs(members) do
  local r = redis.call('HMGET', key, 'v', 'g', 'R', 'M', 'I', 'D', 'P', 'T', 'n')
  if r[1] then
    for j = 1, 9 do out[#out + 1] = r[j] end
  end
end
return out
"""
