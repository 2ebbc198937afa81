import type { WebSocketConstructor, WebSocketProxyOptions } from './types'

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
} as const

const NUMERIC_KEYS = [
  'maxBufferSize', 'connectTimeout', 'clientIdleTimeout', 'highWaterMark', 'lowWaterMark',
  'maxBufferedAmount', 'heartbeatInterval', 'heartbeatTimeout',
] as const

function fail(field: string, message: string): never {
  throw new TypeError(`[nitro-ws-proxy] createWebSocketProxy: \`${field}\` ${message}`)
}

/** Validate user options once, at setup, and apply defaults. Throws a `TypeError` naming the field. */
export function resolveOptions(input: WebSocketProxyOptions['target'] | WebSocketProxyOptions): ResolvedProxyOptions {
  const options: WebSocketProxyOptions = typeof input === 'string' || input instanceof URL || typeof input === 'function'
    ? { target: input }
    : input
  if (!options || typeof options !== 'object') fail('options', 'must be a target URL, a resolver function or an options object')

  const { target } = options
  if (typeof target === 'string' || target instanceof URL) {
    try { new URL(target) }
    catch { fail('target', `must be an absolute ws://, wss:// or ws+unix: URL, got ${JSON.stringify(String(target))}`) }
  }
  else if (typeof target !== 'function') {
    fail('target', 'must be a URL string, a URL or a function (peer) => string | URL')
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
