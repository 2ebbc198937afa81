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
    },
    messagesToUpstream: 0,
    messagesToClient: 0,
    bytesToUpstream: 0,
    bytesToClient: 0,
  }
}

/** A snapshot of the counters in their public shape. */
export function snapshotCounters(c: ProxyCounters, pool: UpstreamPool): WebSocketProxyStats {
  return {
    open: c.open,
    opened: c.opened,
    closed: { ...c.closed },
    messages: { toUpstream: c.messagesToUpstream, toClient: c.messagesToClient },
    bytes: { toUpstream: c.bytesToUpstream, toClient: c.bytesToClient },
    upstreams: pool.snapshot(),
  }
}
