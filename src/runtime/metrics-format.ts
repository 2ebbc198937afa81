/**
 * The Prometheus text exposition format 0.0.4 of the proxied routes' figures: a pure function of
 * the proxies' `stats()` and the runtime's observations, imported by `metrics.ts` (which fills in
 * this server's proxies) and by the benchmark (which has no Nitro server).
 */
import type { WebSocketProxyStats } from '../core/types'
import { DURATION_BUCKETS, HANDSHAKE_BUCKETS, type Histogram, type RouteObservations } from './observe'

/** `Content-Type` of the text exposition format (the one `prom-client`'s registry answers with). */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/** Every metric name starts with this. */
export const METRICS_PREFIX = 'nitro_ws_proxy_'

/** What {@link formatMetrics} reads. */
export interface MetricsSource {
  /** Proxies by route (`routeRules` key). */
  proxies: ReadonlyMap<string, { stats: () => WebSocketProxyStats }>
  /** Per-route observations (runtime refusals, histograms). */
  observations: ReadonlyMap<string, RouteObservations>
  /** Upgrades refused on paths no WebSocket handler serves (404), by status. */
  unmatchedRefusals: Readonly<Record<number, number>>
}

type Labels = Record<string, string>

interface Family {
  name: string
  type: 'counter' | 'gauge' | 'histogram'
  help: string
  lines: string[]
}

/** The families, in the order they are written. */
function families() {
  const f = (name: string, type: Family['type'], help: string): Family => ({ name: METRICS_PREFIX + name, type, help, lines: [] })
  return {
    open: f('connections_open', 'gauge', 'Proxied connections open now (from the client\'s accept until both legs are released).'),
    opened: f('connections_total', 'counter', 'Client connections accepted (upgrades answered 101).'),
    closed: f('connections_closed_total', 'counter', 'Ended connections by cause: client, upstream, upstream-error, connect-timeout, setup-failed, buffer-limit, backpressure-limit, client-idle, client-heartbeat, upstream-heartbeat, shutdown, lifetime, revoked, rate-limit.'),
    messages: f('messages_total', 'counter', 'Messages relayed, by direction (to_upstream, to_client), counted as they pass.'),
    bytes: f('bytes_total', 'counter', 'Payload bytes relayed, by direction (to_upstream, to_client), counted as they pass; frame headers excluded.'),
    refused: f('upgrades_refused_total', 'counter', 'Upgrades refused, by HTTP status. route="" counts upgrades on paths no WebSocket handler serves (404).'),
    limited: f('limited_total', 'counter', 'Upgrades refused (429) by a connection cap and connections closed (1008) by a rate limit, by limit.'),
    upOpen: f('upstream_connections_open', 'gauge', 'Connections assigned to the upstream now (dialling or open).'),
    upOpened: f('upstream_connections_total', 'counter', 'Dials to the upstream that opened.'),
    upFailed: f('upstream_failed_dials_total', 'counter', 'Dials to the upstream that failed before it opened (refused, 5xx, reset, timeout).'),
    upHealthy: f('upstream_healthy', 'gauge', 'Whether the upstream takes new connections (1) or is out of service (0), by passive and active health.'),
    handshake: f('upstream_handshake_seconds', 'histogram', 'Upstream handshake time (dial to open) of connections that opened.'),
    duration: f('connection_duration_seconds', 'histogram', 'Duration of ended connections (client accept to end); upstream="" for connections that never dialled.'),
  }
}

/**
 * The metrics of `source`'s routes in the Prometheus text exposition format 0.0.4: names prefixed
 * `nitro_ws_proxy_`, label `route` (the `routeRules` key) and, per upstream, `upstream` (its
 * origin). Counters are live: bytes and messages count as they pass, not at close.
 */
export function formatMetrics(source: MetricsSource): string {
  const { proxies, observations: observed, unmatchedRefusals: unmatched } = source
  const f = families()
  const routes = new Set<string>([...proxies.keys(), ...observed.keys()])

  for (const route of routes) {
    const stats = proxies.get(route)?.stats()
    const o = observed.get(route)
    const r = { route }
    // Refusals: the runtime's (auth, unsafe path, setup errors) and the core's (limits, drain, upstream-first).
    const refused: Record<string, number> = {}
    for (const counts of [o?.refused, stats?.refused]) {
      for (const [status, n] of Object.entries(counts ?? {})) refused[status] = (refused[status] ?? 0) + n
    }
    for (const status of Object.keys(refused).sort()) sample(f.refused, { ...r, status }, refused[status]!)
    if (!stats) continue

    sample(f.open, r, stats.open)
    sample(f.opened, r, stats.opened)
    for (const [cause, n] of Object.entries(stats.closed)) sample(f.closed, { ...r, cause }, n)
    sample(f.messages, { ...r, direction: 'to_upstream' }, stats.messages.toUpstream)
    sample(f.messages, { ...r, direction: 'to_client' }, stats.messages.toClient)
    sample(f.bytes, { ...r, direction: 'to_upstream' }, stats.bytes.toUpstream)
    sample(f.bytes, { ...r, direction: 'to_client' }, stats.bytes.toClient)
    const l = stats.limited
    for (const [limit, n] of [['connections', l.connections], ['per_ip', l.perIp], ['per_user', l.perUser], ['message_rate', l.messageRate], ['byte_rate', l.byteRate]] as const) {
      sample(f.limited, { ...r, limit }, n)
    }
    for (const [upstream, u] of Object.entries(stats.upstreams)) {
      const labels = { ...r, upstream }
      sample(f.upOpen, labels, u.open)
      sample(f.upOpened, labels, u.opened)
      sample(f.upFailed, labels, u.failedDials)
      sample(f.upHealthy, labels, u.healthy ? 1 : 0)
    }
    // Every known upstream has its histograms (zero until observed), plus any observed key.
    const keys = new Set<string>([...Object.keys(stats.upstreams), ...(o ? o.upstreams.keys() : [])])
    for (const upstream of keys) {
      const u = o?.upstreams.get(upstream)
      if (upstream !== '') histogram(f.handshake, { ...r, upstream }, u?.handshake)
      if (upstream !== '' || u) histogram(f.duration, { ...r, upstream }, u?.duration)
    }
  }
  for (const status of Object.keys(unmatched).sort()) sample(f.refused, { route: '', status }, unmatched[Number(status)]!)

  let out = ''
  for (const family of Object.values(f)) {
    out += `# HELP ${family.name} ${escapeHelp(family.help)}\n# TYPE ${family.name} ${family.type}\n`
    for (const line of family.lines) out += `${line}\n`
  }
  return out
}

function sample(family: Family, labels: Labels, value: number, suffix = ''): void {
  family.lines.push(`${family.name}${suffix}${formatLabels(labels)} ${formatValue(value)}`)
}

/** `_bucket{le=…}` (cumulative, `+Inf` last), `_sum` and `_count`; zeros when `h` is missing. */
function histogram(family: Family, labels: Labels, h: Histogram | undefined): void {
  const bounds = h?.bounds ?? (family.name.endsWith('handshake_seconds') ? HANDSHAKE_BUCKETS : DURATION_BUCKETS)
  bounds.forEach((bound, i) => sample(family, { ...labels, le: formatValue(bound) }, h?.counts[i] ?? 0, '_bucket'))
  sample(family, { ...labels, le: '+Inf' }, h?.count ?? 0, '_bucket')
  sample(family, labels, h?.sum ?? 0, '_sum')
  sample(family, labels, h?.count ?? 0, '_count')
}

/** `{a="x",b="y"}`; label values escaped as the format says (`\\`, `\"`, `\n`). */
function formatLabels(labels: Labels): string {
  const parts: string[] = []
  for (const [name, value] of Object.entries(labels)) parts.push(`${name}="${escapeLabelValue(value)}"`)
  return parts.length ? `{${parts.join(',')}}` : ''
}

export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, c => c === '\n' ? '\\n' : `\\${c}`)
}

function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, c => c === '\n' ? '\\n' : '\\\\')
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN'
  if (value === Number.POSITIVE_INFINITY) return '+Inf'
  if (value === Number.NEGATIVE_INFINITY) return '-Inf'
  return String(value)
}
