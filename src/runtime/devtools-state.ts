/**
 * The live state behind the dev-only views (`/_ws-proxy/devtools`, the Nuxt DevTools tab): each
 * proxied route with its targets, counters, open connections and last closes, as JSON.
 *
 * Registered by the Nitro module only when the server runs in development (`nitropack dev`,
 * `nuxi dev`); production builds have no such route. Like the access log, it holds no session,
 * cookie, token or query string: users are reduced to their label (`userLabel`), upstream URLs
 * to origin and path (`upstreamLabel`).
 */
import { defineEventHandler, setResponseHeader } from '#nitro-ws-proxy/h3'
import type { WebSocketProxy, WebSocketProxyCloseCause, WebSocketProxyLegClose } from '../core/types'
import { wsProxies } from './handler'
import { observations, unmatchedRefusals, upstreamLabel, userLabel, type RouteObservations } from './observe'

/** Payload bytes or messages, each way. */
export interface Directions {
  toUpstream: number
  toClient: number
}

/** One open connection. */
export interface DevtoolsConnection {
  id: string
  /** The authenticated user's label (`id`, `sub`, `email` or `name`), else `undefined`. */
  user: string | undefined
  clientAddress: string | undefined
  /** The upstream dialled, origin and path only. */
  upstream: string | undefined
  /** Milliseconds since the client was accepted. */
  ageMs: number
  bytes: Directions
  messages: Directions
}

/** One ended connection (newest first in {@link DevtoolsRoute.lastCloses}). */
export interface DevtoolsClose {
  id: string
  user: string | undefined
  clientAddress: string | undefined
  upstream: string | undefined
  endedAt: number
  durationMs: number
  bytes: Directions
  messages: Directions
  client: WebSocketProxyLegClose
  upstreamClose: WebSocketProxyLegClose
  source: 'client' | 'upstream' | 'proxy'
  cause: WebSocketProxyCloseCause
}

/** One proxied route (a `routeRules` entry). */
export interface DevtoolsRoute {
  route: string
  /** Upstream origins of the rule (one, or one per pool entry), from `stats().upstreams`. */
  targets: string[]
  /** `false` when the rule's setup failed (its upgrades are answered 500; see the server log). */
  active: boolean
  open: number
  opened: number
  /** Ended connections by cause (only causes seen). */
  closed: Partial<Record<WebSocketProxyCloseCause, number>>
  /** Refused upgrades by HTTP status: by the runtime (auth, unsafe path) and by the proxy (limits, upstream). */
  refused: Record<number, number>
  /** Totals since the server started: rates are differences between two polls. */
  messages: Directions
  bytes: Directions
  upstreams: Record<string, { open: number, opened: number, failedDials: number, healthy: boolean }>
  connections: DevtoolsConnection[]
  lastCloses: DevtoolsClose[]
}

/** What `GET /_ws-proxy/devtools/state` answers. */
export interface DevtoolsState {
  /** Server time (epoch ms) of this snapshot. */
  now: number
  /** Server process uptime stamp: a change means the counters restarted (dev worker reload). */
  startedAt: number
  routes: DevtoolsRoute[]
  /** Sums over the routes. */
  totals: { open: number, messages: Directions, bytes: Directions }
  /** Upgrades refused with 404 on paths no handler serves. */
  unmatchedRefusals: Record<number, number>
}

/** Closes listed per route (the runtime keeps `LAST_CLOSES`). */
export const DEVTOOLS_CLOSES = 20

/** The time this module (so this server's counters) started. */
const STARTED_AT = Date.now()

/** A snapshot of every proxied route of this server (`wsProxies` and their observations). */
export function collectDevtoolsState(
  proxies: ReadonlyMap<string, WebSocketProxy> = wsProxies,
  observed: ReadonlyMap<string, RouteObservations> = observations,
  now = Date.now(),
): DevtoolsState {
  const routes: DevtoolsRoute[] = []
  const totals = { open: 0, messages: { toUpstream: 0, toClient: 0 }, bytes: { toUpstream: 0, toClient: 0 } }
  const names = [...proxies.keys(), ...[...observed.keys()].filter(route => !proxies.has(route))]
  for (const route of names) {
    const entry = describeRoute(route, proxies.get(route), observed.get(route), now)
    routes.push(entry)
    totals.open += entry.open
    totals.messages.toUpstream += entry.messages.toUpstream
    totals.messages.toClient += entry.messages.toClient
    totals.bytes.toUpstream += entry.bytes.toUpstream
    totals.bytes.toClient += entry.bytes.toClient
  }
  return { now, startedAt: STARTED_AT, routes, totals, unmatchedRefusals: { ...unmatchedRefusals } }
}

function describeRoute(route: string, proxy: WebSocketProxy | undefined, o: RouteObservations | undefined, now: number): DevtoolsRoute {
  const refused: Record<number, number> = { ...o?.refused }
  const lastCloses = (o?.lastCloses ?? []).slice(-DEVTOOLS_CLOSES).reverse().map((event): DevtoolsClose => ({
    id: event.id,
    user: userLabel(event.user),
    clientAddress: event.clientAddress,
    upstream: event.upstream,
    endedAt: event.endedAt,
    durationMs: event.durationMs,
    bytes: { ...event.bytes },
    messages: { ...event.messages },
    client: { ...event.client },
    upstreamClose: { ...event.upstreamClose },
    source: event.source,
    cause: event.cause,
  }))
  if (!proxy) {
    return {
      route, targets: [], active: false, open: 0, opened: 0, closed: {}, refused,
      messages: { toUpstream: 0, toClient: 0 }, bytes: { toUpstream: 0, toClient: 0 },
      upstreams: {}, connections: [], lastCloses,
    }
  }
  const stats = proxy.stats()
  for (const [status, count] of Object.entries(stats.refused)) {
    refused[Number(status)] = (refused[Number(status)] ?? 0) + count
  }
  const closed: Partial<Record<WebSocketProxyCloseCause, number>> = {}
  for (const [cause, count] of Object.entries(stats.closed) as Array<[WebSocketProxyCloseCause, number]>) {
    if (count > 0) closed[cause] = count
  }
  const connections = proxy.connections().map((info): DevtoolsConnection => {
    const context = info.peer.context ?? {}
    return {
      id: info.id,
      user: userLabel(context.user),
      clientAddress: typeof context.clientAddress === 'string' ? context.clientAddress : info.remoteAddress,
      upstream: upstreamLabel(info.url),
      ageMs: Math.max(0, now - info.startedAt),
      bytes: { ...info.bytes },
      messages: { ...info.messages },
    }
  })
  return {
    route,
    targets: Object.keys(stats.upstreams),
    active: true,
    open: stats.open,
    opened: stats.opened,
    closed,
    refused,
    messages: { ...stats.messages },
    bytes: { ...stats.bytes },
    upstreams: Object.fromEntries(Object.entries(stats.upstreams).map(([origin, u]) => [origin, { ...u }])),
    connections,
    lastCloses,
  }
}

/** `GET /_ws-proxy/devtools/state` (development only): {@link DevtoolsState} as JSON, never cached. */
export default defineEventHandler((event) => {
  setResponseHeader(event, 'cache-control', 'no-store')
  setResponseHeader(event, 'x-content-type-options', 'nosniff')
  return collectDevtoolsState()
})
