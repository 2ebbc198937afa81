/**
 * `collectDevtoolsState` (the JSON behind the live view) on hand-made proxies and observations:
 * what it lists, and that no session data, token or query string reaches it.
 */
import { describe, expect, it } from 'vitest'
import type { WebSocketProxy, WebSocketProxyConnectionInfo, WebSocketProxyStats } from '../../src/core/types'
import { collectDevtoolsState, DEVTOOLS_CLOSES } from '../../src/runtime/devtools-state'
import type { RouteObservations, WsProxyCloseEvent } from '../../src/runtime/observe'

const NOW = 1_800_000_000_000
const SECRET_USER = { id: 'u-1', email: 'ann@example.com', token: 'secret-token', roles: ['admin'] }

function stats(partial: Partial<WebSocketProxyStats> = {}): WebSocketProxyStats {
  return {
    open: 1,
    opened: 3,
    closed: { 'client': 1, 'upstream': 1, 'upstream-error': 0, 'connect-timeout': 0, 'setup-failed': 0, 'buffer-limit': 0, 'backpressure-limit': 0, 'client-idle': 0, 'client-heartbeat': 0, 'upstream-heartbeat': 0, 'shutdown': 0, 'lifetime': 0, 'revoked': 0, 'rate-limit': 0 },
    messages: { toUpstream: 10, toClient: 20 },
    bytes: { toUpstream: 100, toClient: 200 },
    upstreams: { 'ws://10.0.0.1:4000': { open: 1, opened: 3, failedDials: 0, healthy: true }, 'ws://10.0.0.2:4000': { open: 0, opened: 0, failedDials: 2, healthy: false } },
    refused: { 429: 2 },
    limited: { connections: 2, perIp: 0, perUser: 0, messageRate: 0, byteRate: 0 },
    ...partial,
  }
}

function connection(): WebSocketProxyConnectionInfo {
  return {
    id: 'abc-1',
    peer: { context: { user: SECRET_USER, clientAddress: '203.0.113.9' } } as never,
    remoteAddress: '127.0.0.1',
    url: new URL('ws://user:pass@10.0.0.1:4000/rooms/a?token=secret-query'),
    startedAt: NOW - 5_000,
    upstreamOpenedAt: NOW - 4_990,
    handshakeMs: 10,
    durationMs: 5_000,
    bytes: { toUpstream: 7, toClient: 9 },
    messages: { toUpstream: 1, toClient: 2 },
  }
}

function closeEvent(n: number): WsProxyCloseEvent {
  return {
    route: '/live/**', id: `abc-c${n}`, clientAddress: '203.0.113.9', upstream: 'ws://10.0.0.1:4000/rooms/a',
    user: SECRET_USER, startedAt: NOW - 60_000 + n, handshakeMs: 5, endedAt: NOW - 1_000 + n, durationMs: 59_000,
    bytes: { toUpstream: 1, toClient: 2 }, messages: { toUpstream: 1, toClient: 1 },
    client: { code: 1000, reason: 'bye' }, upstreamClose: { code: 1000, reason: 'bye' }, source: 'client', cause: 'client',
  }
}

/** The observations the live view reads (refusals, last closes); histograms are the metrics'. */
function observations(closes: number): RouteObservations {
  return {
    refused: { 401: 3, 429: 1 },
    lastCloses: Array.from({ length: closes }, (_, i) => closeEvent(i)),
  } as Partial<RouteObservations> as RouteObservations
}

const proxy = { stats: () => stats(), connections: () => [connection()] } as unknown as WebSocketProxy

describe('collectDevtoolsState', () => {
  it('lists each route with targets, counters, connections and the newest closes first', () => {
    const state = collectDevtoolsState(new Map([['/live/**', proxy]]), new Map([['/live/**', observations(30)]]), NOW)
    expect(state.now).toBe(NOW)
    expect(state.totals).toEqual({ open: 1, messages: { toUpstream: 10, toClient: 20 }, bytes: { toUpstream: 100, toClient: 200 } })
    const [route] = state.routes
    expect(route).toMatchObject({
      route: '/live/**',
      active: true,
      targets: ['ws://10.0.0.1:4000', 'ws://10.0.0.2:4000'],
      open: 1,
      opened: 3,
      closed: { client: 1, upstream: 1 },
      // Runtime refusals (auth) and the proxy's own (limits), summed by status.
      refused: { 401: 3, 429: 3 },
    })
    expect(route!.connections).toEqual([{
      id: 'abc-1',
      user: 'u-1',
      clientAddress: '203.0.113.9',
      upstream: 'ws://10.0.0.1:4000/rooms/a',
      ageMs: 5_000,
      bytes: { toUpstream: 7, toClient: 9 },
      messages: { toUpstream: 1, toClient: 2 },
    }])
    expect(route!.lastCloses).toHaveLength(DEVTOOLS_CLOSES)
    expect(route!.lastCloses[0]!.id).toBe('abc-c29')
    expect(route!.lastCloses[0]).toMatchObject({ user: 'u-1', cause: 'client', source: 'client', client: { code: 1000, reason: 'bye' } })
  })

  it('holds no session data, credentials or query string', () => {
    const json = JSON.stringify(collectDevtoolsState(new Map([['/live/**', proxy]]), new Map([['/live/**', observations(2)]]), NOW))
    for (const secret of ['secret-token', 'secret-query', 'pass', 'ann@example.com', 'admin']) expect(json).not.toContain(secret)
  })

  it('lists a route whose setup failed (observations only) as inactive', () => {
    const state = collectDevtoolsState(new Map(), new Map([['/broken/**', { ...observations(0), refused: { 500: 4 } }]]), NOW)
    expect(state.routes).toEqual([expect.objectContaining({ route: '/broken/**', active: false, targets: [], refused: { 500: 4 }, connections: [] })])
    expect(state.totals.open).toBe(0)
  })
})
