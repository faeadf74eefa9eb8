//! The Lua scripts cutover runs in Redis. Each is one atomic step. Every
//! script that writes checks everything that can fail first (key types,
//! the compare-and-set, permissions through PUBLISH) and writes last, so
//! it either happens completely or not at all.

/// Lua: the release of a canary as stored: '' for none, '?' for one that
/// is unreadable (a rollout replaces it, `rollout abort` deletes it); and
/// how long the retired set keeps a release (30 days). A macro, so that
/// `concat!` takes it into the scripts.
macro_rules! canary_of {
    () => {
        r#"
local RETIRED_KEEP_MS = 2592000000
local function canary_of(text)
  if not text then return '' end
  local ok, c = pcall(cjson.decode, text)
  if ok and type(c) == 'table' and type(c['release']) == 'string' then return c['release'] end
  return '?'
end
"#
    };
}

/// The switch. KEYS: current, manifest, history, release record, pin,
/// rolled_back, signature, canary, canary_manifest, canary_signature,
/// retired. ARGV: expected current ('' = none), new id, manifest JSON,
/// event JSON, history cap, channel, force ('1'), pin mode ('respect' |
/// 'set' | 'clear'), pin JSON (for 'set'), the release rolled back from
/// (''), the release's signature ('' = unsigned: deleted), canary mode
/// ('refuse': not while a rollout runs | 'clear': take the canary off |
/// 'complete': the new release must be the canary), now (ms).
/// Returns {'ok', previous} | {'lost', current} | {'unregistered', ''} |
/// {'pinned', pin JSON} | {'rollout', canary JSON} | {'canary', the
/// canary's release ('' none, '?' unreadable)}.
pub const ACTIVATE: &str = concat!(
    canary_of!(),
    r#"
local function wrongtype(key, want)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= want then
    return 'WRONGTYPE ' .. key .. ' holds a ' .. t .. ', not a ' .. want
  end
end
local bad = wrongtype(KEYS[1], 'string') or wrongtype(KEYS[2], 'string')
  or wrongtype(KEYS[3], 'list') or wrongtype(KEYS[4], 'string')
  or wrongtype(KEYS[5], 'string') or wrongtype(KEYS[7], 'string')
  or wrongtype(KEYS[11], 'zset')
if bad then return redis.error_reply(bad) end
-- The rolled-back set only tells a plain rollback which releases to skip:
-- one of another type (something else wrote it) is replaced, not fatal.
local stray = wrongtype(KEYS[6], 'set')
local cur = redis.call('GET', KEYS[1])
if ARGV[8] == 'respect' then
  local pin = redis.call('GET', KEYS[5])
  if pin then return {'pinned', pin} end
end
if ARGV[7] ~= '1' and (cur or '') ~= ARGV[1] then
  return {'lost', cur or ''}
end
if redis.call('EXISTS', KEYS[4]) == 0 then
  return {'unregistered', ''}
end
-- The canary keys are only deleted here: one of another type (something
-- else wrote it) is an unreadable canary, which a rollback clears.
local canary, canary_release = false, ''
local canary_type = redis.call('TYPE', KEYS[8])['ok']
if canary_type == 'string' then
  canary = redis.call('GET', KEYS[8])
  canary_release = canary_of(canary)
elseif canary_type ~= 'none' then
  canary, canary_release = 'a ' .. canary_type, '?'
end
if ARGV[12] == 'refuse' and canary then return {'rollout', canary} end
if ARGV[12] == 'complete' and canary_release ~= ARGV[2] then
  return {'canary', canary_release}
end
local event = cjson.decode(ARGV[4])
if cur then event['previous'] = cur else event['previous'] = cjson.null end
local text = cjson.encode(event)
-- PUBLISH before any write: a missing channel permission fails here, with
-- nothing written. Subscribers see the message only after the script ends.
redis.call('PUBLISH', ARGV[6], text)
if stray then redis.call('DEL', KEYS[6]) end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
-- The signature goes with the manifest it covers: never one without the other.
if ARGV[11] ~= '' then
  redis.call('SET', KEYS[7], ARGV[11])
else
  redis.call('DEL', KEYS[7])
end
redis.call('LPUSH', KEYS[3], text)
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
if ARGV[8] == 'set' then
  redis.call('SET', KEYS[5], ARGV[9])
elseif ARGV[8] == 'clear' then
  redis.call('DEL', KEYS[5])
end
if ARGV[10] ~= '' then
  redis.call('SADD', KEYS[6], ARGV[10])
end
-- The canary goes with the switch that completes or clears it; the
-- release no longer live (and a canary cleared) are retired now.
local now = tonumber(ARGV[13])
if canary then
  redis.call('DEL', KEYS[8], KEYS[9], KEYS[10])
  if canary_release ~= ARGV[2] and canary_release ~= '?' then
    redis.call('ZADD', KEYS[11], now, canary_release)
  end
end
if cur and cur ~= ARGV[2] then redis.call('ZADD', KEYS[11], now, cur) end
redis.call('ZREM', KEYS[11], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[11], '-inf', '(' .. (now - RETIRED_KEEP_MS))
-- A release made live on purpose is no longer one that was rolled back from.
if ARGV[8] ~= 'set' then
  redis.call('SREM', KEYS[6], ARGV[2])
end
return {'ok', cur or ''}
"#
);

/// A rollout. KEYS: current, canary, canary_manifest, canary_signature,
/// history, pin, retired, the new canary's release record. ARGV: mode
/// ('set': a new canary | 'raise': its JSON only | 'abort'), expected
/// current ('' = none), expected canary release ('' none, '?'
/// unreadable), canary JSON, manifest JSON, signature ('' = unsigned),
/// event JSON, history cap, channel, now (ms), the new canary's release.
/// Returns {'ok', current, canary before} | {'lost', current, canary} |
/// {'pinned', pin JSON, ''} | {'unregistered', current, canary}.
pub const ROLLOUT: &str = concat!(
    canary_of!(),
    r#"
local want = {'string', 'string', 'string', 'string', 'list', 'string', 'zset'}
for i, kind in ipairs(want) do
  local t = redis.call('TYPE', KEYS[i])['ok']
  -- An unreadable canary of another type is what a rollout replaces.
  if t ~= 'none' and t ~= kind and i ~= 2 then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. t .. ', not a ' .. kind)
  end
end
local mode = ARGV[1]
if mode ~= 'abort' then
  local pin = redis.call('GET', KEYS[6])
  if pin then return {'pinned', pin, ''} end
end
local cur = redis.call('GET', KEYS[1]) or ''
local old = ''
if redis.call('TYPE', KEYS[2])['ok'] == 'string' then
  old = canary_of(redis.call('GET', KEYS[2]))
elseif redis.call('EXISTS', KEYS[2]) == 1 then
  old = '?'
end
if cur ~= ARGV[2] or old ~= ARGV[3] then return {'lost', cur, old} end
if mode == 'set' and redis.call('EXISTS', KEYS[8]) == 0 then
  return {'unregistered', cur, old}
end
local event = cjson.decode(ARGV[7])
if cur ~= '' then event['previous'] = cur else event['previous'] = cjson.null end
local text = cjson.encode(event)
-- PUBLISH before any write, as the switch does.
redis.call('PUBLISH', ARGV[9], text)
local now = tonumber(ARGV[10])
if mode == 'abort' then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
  if old ~= '' and old ~= '?' then redis.call('ZADD', KEYS[7], now, old) end
else
  if mode == 'set' then
    redis.call('DEL', KEYS[2])
    redis.call('SET', KEYS[3], ARGV[5])
    if ARGV[6] ~= '' then redis.call('SET', KEYS[4], ARGV[6]) else redis.call('DEL', KEYS[4]) end
    if old ~= '' and old ~= '?' and old ~= ARGV[11] then redis.call('ZADD', KEYS[7], now, old) end
    redis.call('ZREM', KEYS[7], ARGV[11])
  end
  redis.call('SET', KEYS[2], ARGV[4])
end
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. (now - RETIRED_KEEP_MS))
redis.call('LPUSH', KEYS[5], text)
redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[8]) - 1)
return {'ok', cur, old}
"#
);

/// Record a release. KEYS: release record, releases set.
/// ARGV: record JSON, score (ms), id, replace ('1': overwrite what is there,
/// which the caller read as damaged: not JSON, JSON of another shape, or
/// another release's record), signed ('1': this record is signed, and
/// replaces an unsigned one: the one change a record takes). Otherwise an
/// existing record is kept: records are immutable.
pub const REGISTER: &str = r#"
for i, want in ipairs({'string', 'zset'}) do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= want then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. t .. ', not a ' .. want)
  end
end
local old = redis.call('GET', KEYS[1])
local readable, parsed = false, nil
if old then readable, parsed = pcall(cjson.decode, old) end
if not old or ARGV[4] == '1'
  or (ARGV[5] == '1' and readable and type(parsed) == 'table' and parsed['signature'] == nil) then
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[3])
return 1
"#;

/// Release the lock if it is still `ARGV[1]`'s, or, when `ARGV[2]` is a
/// type other than 'string', if it still holds a value of that type (a key
/// something else wrote). KEYS: lock.
pub const UNLOCK: &str = r#"
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'string' then
  if t ~= 'none' and t == ARGV[2] then return redis.call('DEL', KEYS[1]) end
  return 0
end
if ARGV[2] == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// Extend the lock if it is still `ARGV[1]`'s, to `ARGV[2]` ms. KEYS: lock.
pub const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"#;

/// Which of the given commands the current user may not run, without
/// running them. ARGV: commands, one per argument, words separated by
/// spaces. Redis before 7 has no `redis.acl_check_cmd`: nothing is reported.
pub const PROBE: &str = r#"
if redis.acl_check_cmd == nil then return {} end
local missing = {}
for _, line in ipairs(ARGV) do
  local words = {}
  for w in string.gmatch(line, '%S+') do table.insert(words, w) end
  if not redis.acl_check_cmd(unpack(words)) then table.insert(missing, line) end
end
return missing
"#;
