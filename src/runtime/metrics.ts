/**
 * The proxied routes of this server as Prometheus metrics (text exposition format 0.0.4, what
 * Prometheus, Grafana Agent / Alloy, OpenTelemetry collectors and VictoriaMetrics scrape), and
 * who may read them. Served by the module's metrics endpoint (`metrics-handler.ts`), and
 * auto-imported as `renderWsProxyMetrics()` for apps that serve their own `/metrics`.
 *
 * No session, cookie, token, user or query string ever reaches a metric: labels are the route
 * (the `routeRules` key), the upstream's origin, and fixed words (cause, direction, status).
 */
import { wsProxies } from './handler'
import { formatMetrics, type MetricsSource } from './metrics-format'
import { observations, unmatchedRefusals } from './observe'

export { escapeLabelValue, formatMetrics, METRICS_CONTENT_TYPE, METRICS_PREFIX, type MetricsSource } from './metrics-format'

/** Where the module serves the metrics when `metrics: true`. */
export const DEFAULT_METRICS_PATH = '/_ws-proxy/metrics'

/**
 * The metrics of every proxied route of this server, in the Prometheus text exposition format
 * 0.0.4 (see `formatMetrics`). `source` replaces parts of what is read (tests, benchmarks).
 *
 * @example
 * // server/routes/metrics.get.ts: one endpoint for prom-client's registry and the proxy
 * import { register } from 'prom-client'
 * export default defineEventHandler(async (event) => {
 *   // …your own access check…
 *   setResponseHeader(event, 'content-type', register.contentType)
 *   return (await register.metrics()) + renderWsProxyMetrics()
 * })
 */
export function renderMetrics(source: Partial<MetricsSource> = {}): string {
  return formatMetrics({
    proxies: source.proxies ?? wsProxies,
    observations: source.observations ?? observations,
    unmatchedRefusals: source.unmatchedRefusals ?? unmatchedRefusals,
  })
}

// --- who may read them ---------------------------------------------------------------------

/** What {@link canReadMetrics} looks at in a request. */
export interface MetricsRequest {
  method: string
  /** The address of the TCP peer (the socket's; never a forwarding header). `undefined` on a Unix socket. */
  remoteAddress: string | undefined
  /** The `Authorization` header. */
  authorization: string | null | undefined
  /**
   * Whether the request carries `forwarded`, `x-forwarded-for` or `x-real-ip`: a proxy relayed it,
   * so a loopback socket does not mean a local client.
   */
  forwarded: boolean
}

/**
 * Whether a request may read the metrics: `GET`/`HEAD` only; with a token (a non-empty string),
 * exactly `Authorization: Bearer <token>`; without one, a loopback socket (127.0.0.0/8, `::1`,
 * `::ffff:127.x.y.z`) that no proxy relayed. Everyone else gets a 404 from the endpoint.
 */
export function canReadMetrics(request: MetricsRequest, token: string | undefined): boolean {
  if (request.method !== 'GET' && request.method !== 'HEAD') return false
  if (token) {
    const match = /^Bearer\s+(.+?)\s*$/i.exec(request.authorization ?? '')
    return match !== null && safeEqual(match[1]!, token)
  }
  return !request.forwarded && isLoopbackAddress(request.remoteAddress)
}

/** Whether `address` (as a socket reports it) is a loopback address. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false
  let a = address.toLowerCase()
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1)
  if (a === '::1' || a === '0:0:0:0:0:0:0:1') return true
  if (a.startsWith('::ffff:')) {
    a = a.slice(7)
    // The hex spelling of an IPv4-mapped address: ::ffff:7f00:1 is 127.0.0.1.
    if (/^7f[\da-f]{2}:[\da-f]{1,4}$/.test(a)) return true
  }
  const octets = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(a)
  return octets !== null && octets[1] === '127' && octets.slice(2).every(o => Number(o) <= 255)
}

/**
 * Compare a presented secret with the expected one in time that depends only on the expected
 * one's length, not on where they first differ.
 */
export function safeEqual(presented: string, expected: string): boolean {
  let diff = presented.length ^ expected.length
  for (let i = 0; i < expected.length; i++) {
    diff |= (presented.charCodeAt(i) | 0) ^ expected.charCodeAt(i)
  }
  return diff === 0
}
