/**
 * The one Lua script behind every Redis decision: refill, check and take on up to N buckets
 * atomically, on the Redis server's clock (so replicas with skewed clocks agree). It repeats
 * bucket.ts's arithmetic line for line; keep the two in step.
 *
 * KEYS[i]   one hash per bucket: tk = tokens held, ts = when (ms, server clock)
 * ARGV      for bucket i: capacity, refill per second, cost at 3i-2, 3i-1, 3i; then at 3N+1 the
 *           deadline (ms, server clock; 0: none): the moment the gateway stops waiting
 * returns   { allowed (1 or 0), level of bucket 1, ..., level of bucket N, now }: each level is the
 *           bucket refilled to now, before this cost, as a %.17g string (exact double round trip);
 *           now is the server clock (ms, %.17g). Past the deadline: { -1, now }, nothing written.
 *
 * The deadline: a decision that reaches Redis after the gateway answered without it (on_store_error,
 * a slow or stalled Redis) must not take tokens for a request that was refused or let through
 * unmetered; a slow Redis would otherwise charge every request it made wait, and the client again
 * for each retry.
 *
 * A taken bucket expires (PEXPIRE) when it would be full again, since a full bucket and no bucket
 * are the same; a bucket that never refills (rate 0), or would be full only after MAX_TTL ms (2^53 - 1,
 * about 285,000 years: a tiny rate or a huge capacity), is kept (PERSIST). Past that, `%d` cannot
 * spell the time (past 2^63 it wrapped to a negative one, which deleted the bucket after every
 * take: a key with refill_per_second 1e-16 was never limited). A refusal writes nothing.
 */
export const TAKE_SCRIPT = `
local EPSILON = 1e-9
local MAX_TTL = 9007199254740991
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local n = #KEYS
local deadline = tonumber(ARGV[3 * n + 1])
if deadline ~= nil and deadline > 0 and now > deadline then return { -1, string.format('%.17g', now) } end
local levels = {}
local stamps = {}
local allowed = 1
for i = 1, n do
  local capacity = tonumber(ARGV[3 * i - 2])
  local rate = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local held = redis.call('HMGET', KEYS[i], 'tk', 'ts')
  local tokens = capacity
  local stamp = now
  if held[1] and held[2] then
    tokens = tonumber(held[1])
    stamp = tonumber(held[2])
    local elapsed = now - stamp
    if elapsed > 0 then
      tokens = tokens + (elapsed * rate) / 1000
      stamp = now
    end
    if tokens > capacity then tokens = capacity end
  end
  levels[i] = tokens
  stamps[i] = stamp
  if tokens + EPSILON < cost then allowed = 0 end
end
if allowed == 1 then
  for i = 1, n do
    local capacity = tonumber(ARGV[3 * i - 2])
    local rate = tonumber(ARGV[3 * i - 1])
    local left = levels[i] - tonumber(ARGV[3 * i])
    if left < 0 then left = 0 end
    redis.call('HSET', KEYS[i], 'tk', string.format('%.17g', left), 'ts', string.format('%.17g', stamps[i]))
    local ttl = MAX_TTL + 1
    if rate > 0 then ttl = math.ceil(stamps[i] - now + ((capacity - left) * 1000) / rate) end
    if ttl < 1 then ttl = 1 end
    if ttl <= MAX_TTL then
      redis.call('PEXPIRE', KEYS[i], string.format('%d', ttl))
    else
      redis.call('PERSIST', KEYS[i])
    end
  end
end
local out = { allowed }
for i = 1, n do out[i + 1] = string.format('%.17g', levels[i]) end
out[n + 2] = string.format('%.17g', now)
return out
`;
