// The Redis key layout and the Lua scripts that write it: the public interface an MDM may write
// directly (docs/redis-layout.md), kept in one readable file.
import type { ExemptionScope } from '../device-store';
import { CLOCK_TOLERANCE_MS, MAX_REPORT_SKEW_MS } from '../record-codec';

/**
 * Key names (docs/redis-layout.md). Everything about one device carries the hash tag `{deviceId}`,
 * so a device's multi-key writes land in one Cluster slot; per-user keys carry `{user}`.
 */
export function redisKeys(prefix: string) {
  const glob = prefix.replace(/[*?[\]\\]/g, '\\$&');
  return {
    device: (deviceId: string) => `${prefix}device:{${deviceId}}`,
    /** SCAN patterns for listDevices / listExemptions, and the device id back out of a record key. */
    devicePattern: `${glob}device:{*}`,
    exemptionPattern: `${glob}exemption:*`,
    deviceIdOf: (key: string) => key.slice(`${prefix}device:{`.length, -1),
    firstSeen: (deviceId: string) => `${prefix}firstseen:{${deviceId}}`,
    exemption: (scope: ExemptionScope, subject: string) => `${prefix}exemption:${scope}:{${subject}}`,
    deviceAppPasswords: (deviceId: string) => `${prefix}apppws:{${deviceId}}`,
    userDevices: (user: string) => `${prefix}user:{${user}}:devices`,
    appPassword: (credentialId: string) => `${prefix}apppw:${credentialId}`,
    flag: (name: string) => `${prefix}flag:${name}`,
    audit: `${prefix}audit`,
    changes: `${prefix}changes`,
  };
}

/**
 * ISO-8601 → ms epoch in Lua, for the same format record-codec accepts (the script must compare
 * reportedAt of a record an MDM may have written itself). Days from civil date: H. Hinnant's algorithm.
 */
const LUA_ISO_MS = `
local function iso_ms(s)
  if type(s) ~= 'string' then return nil end
  local y, mo, d, h, mi, sec, rest = string.match(s, '^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt](%d%d):(%d%d):(%d%d)(.*)$')
  if not y then return nil end
  y, mo, d, h, mi, sec = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(sec)
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or sec > 60 then return nil end
  local frac = 0
  local f = string.match(rest, '^%.(%d+)')
  if f then
    frac = tonumber(string.sub(f .. '000', 1, 3))
    rest = string.sub(rest, #f + 2)
  end
  local off = 0
  if rest ~= 'Z' and rest ~= 'z' then
    local sign, oh, om = string.match(rest, '^([%+%-])(%d%d):(%d%d)$')
    if not sign then return nil end
    off = (tonumber(oh) * 60 + tonumber(om)) * 60000
    if sign == '+' then off = -off end
  end
  if mo <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((mo + 9) % 12) + 2) / 5) + d - 1
  local days = era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
  return ((days * 24 + h) * 60 + mi) * 60000 + sec * 1000 + frac + off
end
`;

/** SADD to a user index and keep the index alive at least as long as the record just stored. */
const LUA_INDEX_ADD = `
local function index_add(key, member, ttl)
  redis.pcall('SADD', key, member)
  local left = redis.pcall('PTTL', key)
  if type(left) == 'number' and left < ttl then redis.pcall('PEXPIRE', key, ttl) end
end
`;

/**
 * The order time of a stored record, or nil when it is from the future: record-codec.ts
 * storedOrderMs, the same rule (a record an MDM or an attacker wrote dated 2099 must not pin the device).
 */
const LUA_STORED_ORDER_MS = `
local function stored_order_ms(rec, now)
  local reported, received = iso_ms(rec.reportedAt), iso_ms(rec.receivedAt)
  if not reported or not received then return nil end
  if received > now + ${CLOCK_TOLERANCE_MS} or reported > received + ${MAX_REPORT_SKEW_MS} then return nil end
  return math.min(reported, received)
end
`;

/**
 * putDevice, atomically: ignore a report older than the stored one (both by reportedAt clamped to
 * receivedAt; a stored record from the future holds nothing back), else store the record with its
 * TTL, align the first-seen hash's TTL, index the device under its user, publish the change.
 * KEYS: record, first-seen hash, [user index — omitted in Cluster, where it lives in another slot].
 * ARGV: record JSON, order ms (record-codec reportOrderMs), TTL ms, device id, change channel,
 * change event JSON, the writer's clock (ms epoch). Returns {1|0, previous user or ''}.
 */
export const LUA_PUT_DEVICE = `${LUA_ISO_MS}${LUA_STORED_ORDER_MS}${LUA_INDEX_ADD}
local old = redis.pcall('GET', KEYS[1])
local old_user = ''
if type(old) == 'string' then
  local ok, rec = pcall(cjson.decode, old)
  if ok and type(rec) == 'table' then
    local old_ms = stored_order_ms(rec, tonumber(ARGV[7]))
    if old_ms and old_ms > tonumber(ARGV[2]) then return {0, ''} end
    if type(rec.user) == 'string' then old_user = rec.user end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
if KEYS[3] then index_add(KEYS[3], ARGV[4], tonumber(ARGV[3])) end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return {1, old_user}
`;

/** Cluster only: the user-index half of putDevice, in the user's slot. KEYS: index. ARGV: device id, TTL ms. */
export const LUA_INDEX_DEVICE = `${LUA_INDEX_ADD}
index_add(KEYS[1], ARGV[1], tonumber(ARGV[2]))
return 1
`;

/**
 * markFirstSeenNoncompliant: HSETNX, and give the hash the record's remaining TTL (or a fallback
 * when there is no record) so first-seen times do not outlive the device.
 * KEYS: first-seen hash, record. ARGV: check id, ms epoch, fallback TTL ms. Returns the stored value.
 */
export const LUA_MARK_FIRST_SEEN = `
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) < 0 then
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl <= 0 then ttl = tonumber(ARGV[3]) end
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return redis.call('HGET', KEYS[1], ARGV[1])
`;

export interface Scripts {
  mwPutDevice(numKeys: number, ...keysAndArgs: (string | number)[]): Promise<[number, string]>;
  mwMarkFirstSeen(...keysAndArgs: (string | number)[]): Promise<string>;
  mwIndexDevice(...keysAndArgs: (string | number)[]): Promise<number>;
}
