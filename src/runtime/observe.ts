/**
 * What the proxied routes of this server do, for code and for people: the `ws-proxy:open` and
 * `ws-proxy:close` runtime hooks, the `nitro-ws-proxy:open` / `:close` diagnostics channels, the
 * access log, and the per-route figures behind the metrics endpoint and the live views
 * (refusals by status, histograms, the last closes).
 *
 * Records never hold a session, cookie, token or query string: the upstream URL is reduced to
 * its origin and path, the user to what the auth method verified.
 */
import type { WebSocketProxyCloseCause, WebSocketProxyConnectionInfo, WebSocketProxyConnectionRecord, WebSocketProxyLegClose } from '../core/types'

/** `ws-proxy:open`: a connection's upstream opened. */
export interface WsProxyOpenEvent {
  /** The route (`routeRules` key), e.g. `'/live/**'`. */
  route: string
  /** Unique in this server process. */
  id: string
  /** The client's address (the socket's; behind a trusted proxy, what it appended). */
  clientAddress: string | undefined
  /** The upstream dialled, without query string. */
  upstream: string | undefined
  /** The authenticated user (routes with `auth`), else `undefined`. */
  user: unknown
  /** Epoch ms the client was accepted; milliseconds of the upstream handshake. */
  startedAt: number
  handshakeMs: number | undefined
}

/** `ws-proxy:close`: a connection ended (exactly one per connection, however it ended). */
export interface WsProxyCloseEvent extends WsProxyOpenEvent {
  endedAt: number
  durationMs: number
  bytes: { toUpstream: number, toClient: number }
  messages: { toUpstream: number, toClient: number }
  /** The close the client leg saw (received or sent), and the upstream leg. 1006: none. */
  client: WebSocketProxyLegClose
  upstreamClose: WebSocketProxyLegClose
  /** Who ended it and why (the causes of `stats().closed`). */
  source: 'client' | 'upstream' | 'proxy'
  cause: WebSocketProxyCloseCause
}

/** Histogram bucket bounds, in seconds. */
export const HANDSHAKE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const
export const DURATION_BUCKETS = [1, 5, 15, 60, 300, 900, 3600, 14_400, 86_400] as const

/** A cumulative histogram (Prometheus semantics: `counts[i]` observations ≤ `bounds[i]`). */
export interface Histogram {
  bounds: readonly number[]
  counts: number[]
  sum: number
  count: number
}

function histogram(bounds: readonly number[]): Histogram {
  return { bounds, counts: bounds.map(() => 0), sum: 0, count: 0 }
}

function observe(h: Histogram, value: number): void {
  h.sum += value
  h.count++
  for (let i = 0; i < h.bounds.length; i++) {
    if (value <= h.bounds[i]!) h.counts[i]!++
  }
}

/** The histograms of one upstream of a route. */
export interface UpstreamObservations {
  handshake: Histogram
  duration: Histogram
}

/** What one route keeps beside its proxy's `stats()`. */
export interface RouteObservations {
  /** Upgrades refused before the proxy saw them (auth 401/403, 400 unsafe path, 500), by status. */
  refused: Record<number, number>
  /** Over the whole route (every upstream). */
  handshake: Histogram
  duration: Histogram
  /**
   * The same histograms per upstream, keyed like `stats().upstreams` (origin, or the socket path
   * of a `ws+unix:` URL); `''` holds the durations of connections that never dialled.
   */
  upstreams: Map<string, UpstreamObservations>
  /** The last closes, newest last (at most {@link LAST_CLOSES}). */
  lastCloses: WsProxyCloseEvent[]
}

export const LAST_CLOSES = 50

/** How ended connections are logged (module option `accessLog`). */
export type AccessLogFormat = false | 'text' | 'json'

/** Where events go: set by the generated handler code (Nitro's hooks) and the module's config. */
export interface ObserverSinks {
  callHook?: (name: 'ws-proxy:open' | 'ws-proxy:close', event: WsProxyOpenEvent | WsProxyCloseEvent) => unknown
  accessLog?: AccessLogFormat
}

/** Per-route observations of this server, by route. */
export const observations = new Map<string, RouteObservations>()

/** Upgrades refused where no route handler ran (404 on unmatched paths). */
export const unmatchedRefusals: Record<number, number> = {}

export function routeObservations(route: string): RouteObservations {
  let o = observations.get(route)
  if (!o) {
    o = { refused: {}, handshake: histogram(HANDSHAKE_BUCKETS), duration: histogram(DURATION_BUCKETS), upstreams: new Map(), lastCloses: [] }
    observations.set(route, o)
  }
  return o
}

/** The histograms of `key` (an upstream key, see {@link upstreamKeyOf}) on a route. */
export function upstreamObservations(o: RouteObservations, key: string): UpstreamObservations {
  let u = o.upstreams.get(key)
  if (!u) {
    u = { handshake: histogram(HANDSHAKE_BUCKETS), duration: histogram(DURATION_BUCKETS) }
    o.upstreams.set(key, u)
  }
  return u
}

/**
 * The key of the upstream a URL points at, as in `stats().upstreams`: the origin
 * (`ws://10.0.0.1:4000`, no credentials, path or query), or `ws+unix:<socket path>`; `''` for none.
 */
export function upstreamKeyOf(url: URL | undefined): string {
  if (!url) return ''
  if (url.protocol === 'ws+unix:') {
    const colon = url.pathname.indexOf(':')
    return `ws+unix:${colon === -1 ? url.pathname : url.pathname.slice(0, colon)}`
  }
  return `${url.protocol}//${url.host}`
}

/** Count an upgrade the runtime refused on `route` (before the proxy). */
export function countRouteRefusal(route: string, status: number): void {
  const refused = routeObservations(route).refused
  refused[status] = (refused[status] ?? 0) + 1
}

interface Channel { hasSubscribers: boolean, publish: (message: unknown) => void }
let channels: { open: Channel, close: Channel } | null | undefined

/** `node:diagnostics_channel` where the runtime has it (Node, Bun, Deno), without a static import. */
function diagnostics(): { open: Channel, close: Channel } | null {
  if (channels !== undefined) return channels
  try {
    const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => any } }).process
    const dc = proc?.getBuiltinModule?.('node:diagnostics_channel')
    channels = dc ? { open: dc.channel('nitro-ws-proxy:open'), close: dc.channel('nitro-ws-proxy:close') } : null
  }
  catch {
    channels = null
  }
  return channels
}

/** The upstream URL without credentials or query string. */
export function upstreamLabel(url: URL | undefined): string | undefined {
  if (!url) return undefined
  if (url.protocol === 'ws+unix:') return `ws+unix:${url.pathname}`
  return `${url.protocol}//${url.host}${url.pathname}`
}

function openEvent(route: string, info: WebSocketProxyConnectionInfo): WsProxyOpenEvent {
  const context = info.peer.context ?? {}
  return {
    route,
    id: info.id,
    clientAddress: typeof context.clientAddress === 'string' ? context.clientAddress : info.remoteAddress,
    upstream: upstreamLabel(info.url),
    user: context.user,
    startedAt: info.startedAt,
    handshakeMs: info.handshakeMs,
  }
}

/** The `onConnectionOpen` / `onConnectionClose` options of one route's proxy. */
export function createRouteObserver(route: string, sinks: ObserverSinks) {
  const o = routeObservations(route)
  return {
    onConnectionOpen(info: WebSocketProxyConnectionInfo): void {
      if (info.handshakeMs !== undefined) {
        observe(o.handshake, info.handshakeMs / 1000)
        observe(upstreamObservations(o, upstreamKeyOf(info.url)).handshake, info.handshakeMs / 1000)
      }
      const event = openEvent(route, info)
      const dc = diagnostics()
      if (dc?.open.hasSubscribers) dc.open.publish(event)
      if (sinks.callHook) safely(() => sinks.callHook!('ws-proxy:open', event))
    },
    onConnectionClose(record: WebSocketProxyConnectionRecord): void {
      observe(o.duration, record.durationMs / 1000)
      observe(upstreamObservations(o, upstreamKeyOf(record.url)).duration, record.durationMs / 1000)
      const event: WsProxyCloseEvent = {
        ...openEvent(route, record),
        endedAt: record.endedAt,
        durationMs: record.durationMs,
        bytes: record.bytes,
        messages: record.messages,
        client: record.client,
        upstreamClose: record.upstream,
        source: record.source,
        cause: record.cause,
      }
      o.lastCloses.push(event)
      if (o.lastCloses.length > LAST_CLOSES) o.lastCloses.shift()
      const dc = diagnostics()
      if (dc?.close.hasSubscribers) dc.close.publish(event)
      if (sinks.callHook) safely(() => sinks.callHook!('ws-proxy:close', event))
      if (sinks.accessLog) {
        // Nitro's runtime logs through the global console (Nuxt and `nitropack dev` route it to consola).
        try { console.log(formatAccessLine(event, sinks.accessLog)) }
        catch {}
      }
    },
  }
}

function safely(fn: () => unknown): void {
  try {
    const result = fn() as Promise<unknown> | undefined
    if (result && typeof result.catch === 'function') result.catch(error => console.error('[nitro-ws-proxy] a ws-proxy hook failed:', error))
  }
  catch (error) {
    console.error('[nitro-ws-proxy] a ws-proxy hook failed:', error)
  }
}

/**
 * One access log line: `text` is space-separated `key=value` pairs (values with spaces quoted),
 * `json` one JSON object. The user is its `id` (or `sub`, `email`), never the whole record.
 */
export function formatAccessLine(event: WsProxyCloseEvent, format: 'text' | 'json'): string {
  const user = userLabel(event.user)
  const fields = {
    ts: new Date(event.endedAt).toISOString(),
    route: event.route,
    id: event.id,
    client: event.clientAddress ?? '-',
    upstream: event.upstream ?? '-',
    user: user ?? '-',
    duration_ms: event.durationMs,
    handshake_ms: event.handshakeMs ?? '-',
    bytes_up: event.bytes.toUpstream,
    bytes_down: event.bytes.toClient,
    msgs_up: event.messages.toUpstream,
    msgs_down: event.messages.toClient,
    client_code: event.client.code,
    client_reason: event.client.reason,
    upstream_code: event.upstreamClose.code,
    upstream_reason: event.upstreamClose.reason,
    ended_by: event.source,
    cause: event.cause,
  }
  if (format === 'json') return JSON.stringify({ msg: 'nitro-ws-proxy connection closed', ...fields })
  return `[nitro-ws-proxy] ${Object.entries(fields).map(([k, v]) => `${k}=${quoteValue(String(v))}`).join(' ')}`
}

function quoteValue(value: string): string {
  return value === '' ? '""' : /[\s"=]/.test(value) ? JSON.stringify(value) : value
}

/** A user's label for logs and views: `id`, `sub` or `email`; never the whole object. */
export function userLabel(user: unknown): string | undefined {
  if (user === undefined || user === null) return undefined
  if (typeof user !== 'object') return String(user)
  const u = user as Record<string, unknown>
  for (const key of ['id', 'sub', 'email', 'name']) {
    const value = u[key]
    if (typeof value === 'string' || typeof value === 'number') return String(value)
  }
  return undefined
}
