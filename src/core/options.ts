import type { WebSocketConstructor, WebSocketProxyBalance, WebSocketProxyHashKey, WebSocketProxyHealthCheck, WebSocketProxyLimits, WebSocketProxyOptions } from './types'

/** Options with every default applied, as the connections read them. */
export interface ResolvedProxyOptions extends Required<Pick<WebSocketProxyOptions,
  'forwardProtocol' | 'maxBufferSize' | 'connectTimeout' | 'clientIdleTimeout' | 'upstreamFirst' | 'passthrough'
  | 'highWaterMark' | 'lowWaterMark' | 'maxBufferedAmount' | 'heartbeatInterval' | 'heartbeatTimeout'>> {
  target: WebSocketProxyOptions['target']
  headers: WebSocketProxyOptions['headers']
  webSocketOptions: WebSocketProxyOptions['webSocketOptions']
  WebSocket: WebSocketConstructor
  /** True when the constructor is a WHATWG one (events via addEventListener, no pause). */
  whatwg: boolean
  /**
   * The WHATWG constructor takes `(url, { protocols, headers })` (Node 22+'s undici, Bun, Deno):
   * handshake headers can be sent.
   */
  headersInit: boolean
  /** The target as URLs when it is static (one or a list), else `undefined` (a resolver). */
  staticTargets: URL[] | undefined
  balance: WebSocketProxyBalance
  hashKey: WebSocketProxyHashKey | undefined
  maxFails: number
  failTimeout: number
  healthCheck: WebSocketProxyHealthCheck | undefined
  upstreams: URL[]
  maxLifetime: number
  lifetimeClose: readonly [number, string]
  protocolOffer: WebSocketProxyOptions['protocolOffer']
  /** Connection caps, when any is set. */
  limits: WebSocketProxyLimits | undefined
  /** Client send rates, when any is set: messages and bytes per second (0: no limit). */
  rates: { messages: number, bytes: number } | undefined
  onConnectionOpen: WebSocketProxyOptions['onConnectionOpen']
  onConnectionClose: WebSocketProxyOptions['onConnectionClose']
  onUpstreamConnect: WebSocketProxyOptions['onUpstreamConnect']
  onUpstreamOpen: WebSocketProxyOptions['onUpstreamOpen']
  onUpstreamClose: WebSocketProxyOptions['onUpstreamClose']
}

/** Defaults, with why. */
export const DEFAULTS = {
  /** 1 MiB: room for a burst of chat or RPC frames while a backend handshake completes. */
  maxBufferSize: 1024 * 1024,
  /** 10 s, like common reverse-proxy connect timeouts. */
  connectTimeout: 10_000,
  clientIdleTimeout: 0,
  /** 1 MiB queued toward a side before the other side is paused: bounded memory, few pauses. */
  highWaterMark: 1024 * 1024,
  lowWaterMark: 256 * 1024,
  /** 16 MiB: a last-resort cap for sides that cannot be paused. */
  maxBufferedAmount: 16 * 1024 * 1024,
  /** 30 s pings keep NAT and load-balancer idle timers (often 60 s) from dropping a quiet link. */
  heartbeatInterval: 30_000,
  /** 10 s to answer: generous for a mobile round trip, short enough to free dead pairs. */
  heartbeatTimeout: 10_000,
  /** nginx's defaults (`max_fails=1 fail_timeout=10s`). */
  maxFails: 1,
  failTimeout: 10_000,
  maxLifetime: 0,
} as const

/** Most upstreams in one pool (a connection tracks the ones it tried in a 32-bit mask). */
export const MAX_UPSTREAMS = 32

const BALANCES: readonly WebSocketProxyBalance[] = ['least-connections', 'round-robin', 'random', 'hash']

const NUMERIC_KEYS = [
  'maxBufferSize', 'connectTimeout', 'clientIdleTimeout', 'highWaterMark', 'lowWaterMark',
  'maxBufferedAmount', 'heartbeatInterval', 'heartbeatTimeout', 'maxFails', 'failTimeout', 'maxLifetime',
] as const

function fail(field: string, message: string): never {
  throw new TypeError(`[nitro-ws-proxy] createWebSocketProxy: \`${field}\` ${message}`)
}

/** Validate user options once, at setup, and apply defaults. Throws a `TypeError` naming the field. */
export function resolveOptions(input: WebSocketProxyOptions['target'] | WebSocketProxyOptions): ResolvedProxyOptions {
  const options: WebSocketProxyOptions = typeof input === 'string' || input instanceof URL || typeof input === 'function' || Array.isArray(input)
    ? { target: input }
    : input
  if (!options || typeof options !== 'object') fail('options', 'must be a target URL, a resolver function or an options object')

  const { target } = options
  let staticTargets: URL[] | undefined
  if (typeof target === 'string' || target instanceof URL || Array.isArray(target)) {
    staticTargets = toTargetUrls(target, 'target')
  }
  else if (typeof target !== 'function') {
    fail('target', 'must be a URL string, a URL, a list of them, or a function (peer) => string | URL | list')
  }
  const balance = options.balance ?? 'least-connections'
  if (!BALANCES.includes(balance)) fail('balance', `must be one of ${BALANCES.map(b => `'${b}'`).join(', ')}, got ${JSON.stringify(balance)}`)
  const hashKey = options.hashKey
  if (hashKey !== undefined && typeof hashKey !== 'function' && !isHashKey(hashKey)) {
    fail('hashKey', `must be 'user', 'ip', 'header:<name>', 'query:<name>', 'cookie:<name>' or a function, got ${JSON.stringify(hashKey)}`)
  }
  if (balance === 'hash' && hashKey === undefined) fail('hashKey', 'is required with balance \'hash\'')
  const healthCheck = options.healthCheck
  if (healthCheck !== undefined) {
    if (!healthCheck || typeof healthCheck !== 'object') fail('healthCheck', 'must be an object { interval, path? }')
    if (typeof healthCheck.interval !== 'number' || !(healthCheck.interval >= 100)) fail('healthCheck.interval', `must be a number of milliseconds >= 100, got ${String(healthCheck.interval)}`)
    if (healthCheck.path !== undefined && (typeof healthCheck.path !== 'string' || !healthCheck.path.startsWith('/'))) fail('healthCheck.path', `must be a path starting with '/', got ${JSON.stringify(healthCheck.path)}`)
    if (healthCheck.timeout !== undefined && (typeof healthCheck.timeout !== 'number' || !(healthCheck.timeout > 0))) fail('healthCheck.timeout', `must be a positive number of milliseconds, got ${String(healthCheck.timeout)}`)
  }
  const limits = checkLimits(options.limits)
  if (options.protocolOffer !== undefined && typeof options.protocolOffer !== 'function') fail('protocolOffer', 'must be a function (offer, request) => string[]')
  const upstreams = options.upstreams === undefined ? [] : toTargetUrls(options.upstreams, 'upstreams')
  const lifetimeClose = options.lifetimeClose ?? [1001, 'Connection lifetime reached']
  if (!Array.isArray(lifetimeClose) || typeof lifetimeClose[0] !== 'number' || !isSendableCode(lifetimeClose[0])) {
    fail('lifetimeClose', `must be [code, reason?] with code 1000, 1001, 1008, 1011 or 3000-4999, got ${JSON.stringify(lifetimeClose)}`)
  }

  for (const key of NUMERIC_KEYS) {
    const value = options[key]
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value) || value < 0)) {
      fail(key, `must be a non-negative number of ${key.endsWith('Timeout') || key.endsWith('Interval') ? 'milliseconds' : 'bytes'}, got ${String(value)}`)
    }
  }

  const WebSocketCtor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
  if (typeof WebSocketCtor !== 'function') {
    throw new TypeError(
      '[nitro-ws-proxy] createWebSocketProxy needs a WebSocket constructor: this runtime has no global `WebSocket` '
      + '(Node.js < 22). Pass one with the `WebSocket` option, e.g. `import { WebSocket } from \'ws\'` then '
      + '`createWebSocketProxy({ target, WebSocket })`, or run on Node.js >= 22, Bun or Deno.',
    )
  }

  const highWaterMark = options.highWaterMark ?? DEFAULTS.highWaterMark
  const lowWaterMark = options.lowWaterMark ?? Math.min(DEFAULTS.lowWaterMark, Math.floor(highWaterMark / 4))
  if (lowWaterMark > highWaterMark) fail('lowWaterMark', `(${lowWaterMark}) must not exceed highWaterMark (${highWaterMark})`)

  return {
    target,
    forwardProtocol: options.forwardProtocol ?? true,
    headers: options.headers,
    webSocketOptions: options.webSocketOptions,
    maxBufferSize: options.maxBufferSize ?? DEFAULTS.maxBufferSize,
    connectTimeout: options.connectTimeout ?? DEFAULTS.connectTimeout,
    clientIdleTimeout: options.clientIdleTimeout ?? DEFAULTS.clientIdleTimeout,
    upstreamFirst: options.upstreamFirst ?? false,
    passthrough: options.passthrough ?? true,
    highWaterMark,
    lowWaterMark,
    maxBufferedAmount: options.maxBufferedAmount ?? DEFAULTS.maxBufferedAmount,
    heartbeatInterval: options.heartbeatInterval ?? DEFAULTS.heartbeatInterval,
    heartbeatTimeout: options.heartbeatTimeout ?? DEFAULTS.heartbeatTimeout,
    WebSocket: WebSocketCtor,
    // `ws` clients are EventEmitters that can pause; everything else is treated as WHATWG.
    whatwg: !isWsConstructor(WebSocketCtor),
    headersInit: !isWsConstructor(WebSocketCtor) && takesHeadersInit(WebSocketCtor),
    staticTargets,
    balance,
    hashKey,
    maxFails: options.maxFails ?? DEFAULTS.maxFails,
    failTimeout: options.failTimeout ?? DEFAULTS.failTimeout,
    healthCheck,
    upstreams,
    maxLifetime: options.maxLifetime ?? DEFAULTS.maxLifetime,
    lifetimeClose: [lifetimeClose[0], lifetimeClose[1] ?? ''],
    protocolOffer: options.protocolOffer,
    limits: limits && (limits.connections !== undefined || limits.perIp !== undefined || limits.perUser !== undefined) ? limits : undefined,
    rates: limits && (limits.messagesPerSecond || limits.bytesPerSecond)
      ? { messages: limits.messagesPerSecond ?? 0, bytes: limits.bytesPerSecond ?? 0 }
      : undefined,
    onConnectionOpen: options.onConnectionOpen,
    onConnectionClose: options.onConnectionClose,
    onUpstreamConnect: options.onUpstreamConnect,
    onUpstreamOpen: options.onUpstreamOpen,
    onUpstreamClose: options.onUpstreamClose,
  }
}

/** `ws` clients are EventEmitters that can pause; everything else is treated as WHATWG. */
function isWsConstructor(Ctor: WebSocketConstructor): boolean {
  return typeof Ctor.prototype?.on === 'function' && typeof Ctor.prototype?.pause === 'function'
}

/**
 * Whether the runtime's own `WebSocket` accepts a `{ protocols, headers }` dictionary as its
 * second argument (a non-standard extension of Node's undici, Bun and Deno). A standard one would
 * read the object as a protocol name and throw, so only those runtimes' global qualifies.
 */
function takesHeadersInit(Ctor: WebSocketConstructor): boolean {
  const g = globalThis as { WebSocket?: unknown, Bun?: unknown, Deno?: unknown, process?: { versions?: { node?: string } }, navigator?: { userAgent?: string } }
  if (Ctor !== g.WebSocket) return false
  if (g.Bun !== undefined || g.Deno !== undefined) return true
  // workerd (Cloudflare) polyfills `process.versions.node` but its WebSocket takes no dictionary.
  return typeof g.process?.versions?.node === 'string' && g.navigator?.userAgent !== 'Cloudflare-Workers'
}

/**
 * A target (one URL or a list) as URLs; throws naming `field`. Used at setup for static targets
 * and per connection for what a resolver returns.
 */
export function toTargetUrls(target: unknown, field = 'target'): URL[] {
  const list = Array.isArray(target) ? target : [target]
  if (list.length === 0) fail(field, 'must list at least one upstream URL')
  if (list.length > MAX_UPSTREAMS) fail(field, `lists ${list.length} upstreams; at most ${MAX_UPSTREAMS} are supported`)
  return list.map((entry, i) => {
    const name = Array.isArray(target) ? `${field}[${i}]` : field
    if (typeof entry !== 'string' && !(entry instanceof URL)) fail(name, `must be a URL string or a URL, got ${typeof entry}`)
    let url: URL
    try { url = entry instanceof URL ? entry : new URL(entry) }
    catch { fail(name, `must be an absolute ws://, wss:// or ws+unix: URL, got ${JSON.stringify(String(entry))}`) }
    return url
  })
}

function isHashKey(value: unknown): boolean {
  return value === 'user' || value === 'ip' || (typeof value === 'string' && /^(?:header|query|cookie):.+$/.test(value))
}

/** Codes a proxy may send in a close frame (RFC 6455 §7.4). */
function isSendableCode(code: number): boolean {
  return code === 1000 || code === 1001 || code === 1008 || code === 1011 || (code >= 3000 && code <= 4999)
}

const LIMIT_KEYS = ['connections', 'perIp', 'perUser', 'messagesPerSecond', 'bytesPerSecond'] as const

function checkLimits(limits: WebSocketProxyLimits | undefined): WebSocketProxyLimits | undefined {
  if (limits === undefined) return undefined
  if (!limits || typeof limits !== 'object' || Array.isArray(limits)) fail('limits', 'must be an object { connections?, perIp?, perUser?, messagesPerSecond?, bytesPerSecond? }')
  for (const key of Object.keys(limits)) {
    if (!(LIMIT_KEYS as readonly string[]).includes(key)) fail(`limits.${key}`, `is not a limit; known limits: ${LIMIT_KEYS.join(', ')}`)
  }
  for (const key of LIMIT_KEYS) {
    const value = limits[key]
    if (value === undefined) continue
    const integer = key === 'connections' || key === 'perIp' || key === 'perUser'
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
      fail(`limits.${key}`, `must be a positive ${integer ? 'integer' : 'number'}, got ${String(value)}`)
    }
  }
  return limits
}
