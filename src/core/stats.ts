import type { ConnectionLimits } from './limits'
import type { UpstreamPool } from './pool'
import type { WebSocketProxyCloseCause, WebSocketProxyStats } from './types'

/** Flat mutable counters: the per-message path increments plain number fields. */
export interface ProxyCounters {
  open: number
  opened: number
  closed: Record<WebSocketProxyCloseCause, number>
  messagesToUpstream: number
  messagesToClient: number
  bytesToUpstream: number
  bytesToClient: number
  refused: Record<number, number>
  limited: { connections: number, perIp: number, perUser: number, messageRate: number, byteRate: number }
}

export function createCounters(): ProxyCounters {
  return {
    open: 0,
    opened: 0,
    closed: {
      'client': 0,
      'upstream': 0,
      'upstream-error': 0,
      'connect-timeout': 0,
      'setup-failed': 0,
      'buffer-limit': 0,
      'backpressure-limit': 0,
      'client-idle': 0,
      'client-heartbeat': 0,
      'upstream-heartbeat': 0,
      'shutdown': 0,
      'lifetime': 0,
      'revoked': 0,
      'rate-limit': 0,
    },
    messagesToUpstream: 0,
    messagesToClient: 0,
    bytesToUpstream: 0,
    bytesToClient: 0,
    refused: {},
    limited: { connections: 0, perIp: 0, perUser: 0, messageRate: 0, byteRate: 0 },
  }
}

/** Count an upgrade refused with `status`. */
export function countRefusal(c: ProxyCounters, status: number): void {
  c.refused[status] = (c.refused[status] ?? 0) + 1
}

/** What a live connection has relayed so far (see ProxyConnection). */
interface RelayedCounts {
  messagesUp: number
  messagesDown: number
  bytesUp: number
  bytesDown: number
}

/**
 * A snapshot of the counters in their public shape. Messages and bytes are the ended
 * connections' totals plus what the live ones relayed so far: the per-message path counts once,
 * on its connection.
 */
export function snapshotCounters(c: ProxyCounters, pool: UpstreamPool, live: Iterable<RelayedCounts>, limits?: ConnectionLimits): WebSocketProxyStats {
  let messagesUp = c.messagesToUpstream
  let messagesDown = c.messagesToClient
  let bytesUp = c.bytesToUpstream
  let bytesDown = c.bytesToClient
  for (const r of live) {
    messagesUp += r.messagesUp
    messagesDown += r.messagesDown
    bytesUp += r.bytesUp
    bytesDown += r.bytesDown
  }
  return {
    open: c.open,
    opened: c.opened,
    closed: { ...c.closed },
    messages: { toUpstream: messagesUp, toClient: messagesDown },
    bytes: { toUpstream: bytesUp, toClient: bytesDown },
    upstreams: pool.snapshot(),
    refused: { ...c.refused },
    limited: { ...c.limited },
    ...(limits ? { limits: limits.snapshot() } : {}),
  }
}
