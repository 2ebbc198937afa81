import type { WebSocketProxyCloseCause, WebSocketProxyCloseDetails } from './types'

/**
 * What one leg is told when a connection ends:
 * - `[code, reason]`: a close frame (`code` undefined: a close frame without a code),
 * - `'mirror'`: the code and reason the other side closed with, mapped for this side,
 * - `'terminate'`: the TCP connection is dropped without a close frame,
 * - `null`: nothing (that side ended it).
 */
export type LegEnding = readonly [code: number | undefined, reason: string] | 'mirror' | 'terminate' | null

/** One row of the table: who ended it, what each side is told, what is counted and answered. */
export interface EndingSpec {
  /** Counted in `stats().closed` and reported to `onUpstreamClose`. */
  readonly cause: WebSocketProxyCloseCause
  readonly source: WebSocketProxyCloseDetails['source']
  readonly client: LegEnding
  readonly upstream: LegEnding
  /** HTTP status for an upstream-first handshake that ends before the client is accepted. */
  readonly status: number
  /** `code`/`reason` reported to `onUpstreamClose` when the ending has no received ones. */
  readonly reported?: readonly [code: number | undefined, reason: string | undefined]
}

/**
 * Every way a connection ends, in one table. The connection looks up its ending here; nothing
 * else spells out close codes. See docs/relay.md ("How connections end").
 */
export const ENDINGS = {
  /** The client closed: the upstream gets the client's code and reason. */
  'client-closed': { cause: 'client', source: 'client', client: null, upstream: 'mirror', status: 502 },
  /** The client's socket failed. */
  'client-error': { cause: 'client', source: 'client', client: null, upstream: [1011, 'Client error'], status: 502 },
  /** The client sent a frame an endpoint must refuse (passthrough): fail it with 1002. */
  'client-protocol-error': { cause: 'client', source: 'client', client: 'mirror', upstream: [1011, 'Client error'], status: 502 },
  /** Upstream-first: the upstream opened but the client's handshake never completed. */
  'client-handshake-failed': { cause: 'client', source: 'client', client: null, upstream: [1001, 'Client handshake failed'], status: 502 },
  /** The upstream closed: the client gets the upstream's code and reason. */
  'upstream-closed': { cause: 'upstream', source: 'upstream', client: 'mirror', upstream: null, status: 502 },
  /** The upstream failed: refused, non-101 answer, reset. */
  'upstream-error': { cause: 'upstream-error', source: 'upstream', client: [1011, 'Upstream error'], upstream: 'terminate', status: 502 },
  /** The upstream sent a frame a client endpoint must refuse (masked, RSV bits, bad opcode). */
  'upstream-protocol-error': { cause: 'upstream-error', source: 'upstream', client: [1011, 'Upstream protocol error'], upstream: 'terminate', status: 502, reported: [1002, 'Upstream protocol error'] },
  'setup-failed': { cause: 'setup-failed', source: 'proxy', client: [1011, 'Upstream setup failed'], upstream: 'terminate', status: 502, reported: [1011, 'Upstream setup failed'] },
  'connect-timeout': { cause: 'connect-timeout', source: 'proxy', client: [1011, 'Upstream connect timeout'], upstream: 'terminate', status: 504, reported: [1011, 'Upstream connect timeout'] },
  'buffer-limit': { cause: 'buffer-limit', source: 'proxy', client: [1009, 'Proxy buffer limit exceeded'], upstream: [1001, ''], status: 502, reported: [1009, 'Proxy buffer limit exceeded'] },
  /** A client message over the relay's limit (passthrough; decoding legs use `ws`'s `maxPayload`). */
  'client-message-too-big': { cause: 'buffer-limit', source: 'proxy', client: [1009, 'Frame too big'], upstream: [1009, 'Frame too big'], status: 502, reported: [1009, 'Frame too big'] },
  'upstream-message-too-big': { cause: 'buffer-limit', source: 'proxy', client: [1009, 'Frame too big'], upstream: [1001, 'Frame too big'], status: 502, reported: [1009, 'Frame too big'] },
  /** The upstream's queue passed `maxBufferedAmount` and the client cannot be paused. */
  'upstream-too-slow': { cause: 'backpressure-limit', source: 'proxy', client: [1008, 'Upstream too slow'], upstream: [1001, ''], status: 502, reported: [1008, 'Upstream too slow'] },
  /** The client's queue passed `maxBufferedAmount` and the upstream cannot be paused. */
  'client-too-slow': { cause: 'backpressure-limit', source: 'proxy', client: [1008, 'Client too slow'], upstream: [1001, ''], status: 502, reported: [1008, 'Client too slow'] },
  'client-idle': { cause: 'client-idle', source: 'proxy', client: [1001, 'Client idle timeout'], upstream: [1001, 'Client idle timeout'], status: 502, reported: [1001, 'Client idle timeout'] },
  'client-heartbeat': { cause: 'client-heartbeat', source: 'proxy', client: 'terminate', upstream: [1001, 'Client heartbeat timeout'], status: 502, reported: [1001, 'Client heartbeat timeout'] },
  'upstream-heartbeat': { cause: 'upstream-heartbeat', source: 'proxy', client: [1011, 'Upstream heartbeat timeout'], upstream: 'terminate', status: 502, reported: [1011, 'Upstream heartbeat timeout'] },
  /** `closeAll()` / `drainAll()`: both legs get the code and reason given (1001 Going Away). */
  'shutdown': { cause: 'shutdown', source: 'proxy', client: 'mirror', upstream: 'mirror', status: 503 },
  /** `maxLifetime` reached: both legs get `lifetimeClose`. */
  'lifetime': { cause: 'lifetime', source: 'proxy', client: 'mirror', upstream: 'mirror', status: 503 },
  /** The client sent faster than `limits` allow: it gets 1008 with the rate named. */
  'rate-limited': { cause: 'rate-limit', source: 'proxy', client: 'mirror', upstream: [1001, 'Client rate limited'], status: 429 },
  /** `closeMatching()` (a revoked session): both legs get the code and reason given (1008). */
  'revoked': { cause: 'revoked', source: 'proxy', client: 'mirror', upstream: 'mirror', status: 403 },
} as const satisfies Record<string, EndingSpec>

export type EndingName = keyof typeof ENDINGS
