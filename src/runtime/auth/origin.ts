/**
 * Origin checks against cross-site WebSocket hijacking. Pure functions: no h3, no Nitro, usable
 * at build time (to normalise `allowedOrigins`) and at runtime.
 */

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443, 'ws:': 80, 'wss:': 443 }

/**
 * Normalise an origin to `scheme://host[:port]` (lower case, default port dropped), or return
 * `undefined` when it is not one (a path, query, credentials, `null`, garbage).
 */
export function normalizeOrigin(value: string): string | undefined {
  if (typeof value !== 'string' || value === 'null') {
    return undefined
  }
  let url: URL
  try {
    url = new URL(value)
  }
  catch {
    return undefined
  }
  if (!url.host || url.username || url.password || url.search || url.hash
    || (url.pathname !== '/' && url.pathname !== '')) {
    return undefined
  }
  // Only a trailing '/' may follow the host ('https://a.example/' is a common way to write it).
  if (/^[a-z][\w+.-]*:\/\/[^/?#]+\/.+$/i.test(value.trim())) {
    return undefined
  }
  return `${url.protocol}//${url.host}`.toLowerCase()
}

interface HostPort {
  hostname: string
  port?: number
}

/** Parse a `host` / `x-forwarded-host` value into hostname and explicit port. */
export function parseHost(value: string | null | undefined): HostPort | undefined {
  if (!value) {
    return undefined
  }
  const match = /^(\[[^\]]*\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(value.trim())
  if (!match) {
    return undefined
  }
  let url: URL
  try {
    url = new URL(`http://${match[1]}`)
  }
  catch {
    return undefined
  }
  if (url.username || url.password || url.pathname !== '/' || url.search || url.hash) {
    return undefined
  }
  return { hostname: url.hostname, port: match[2] === undefined ? undefined : Number(match[2]) }
}

/**
 * Whether a browser `Origin` names the same host as the request: same hostname and same port,
 * where a `host` without a port means the origin scheme's default port (the request's scheme is
 * unknown behind a TLS-terminating proxy). Only http(s) origins can match.
 */
export function isSameHost(origin: string, host: string | null | undefined): boolean {
  const target = parseHost(host)
  if (!target) {
    return false
  }
  let url: URL
  try {
    url = new URL(origin)
  }
  catch {
    return false
  }
  const defaultPort = url.protocol === 'http:' || url.protocol === 'https:' ? DEFAULT_PORTS[url.protocol] : undefined
  if (defaultPort === undefined) {
    return false
  }
  const originPort = url.port ? Number(url.port) : defaultPort
  const hostPort = target.port ?? defaultPort
  return url.hostname === target.hostname && originPort === hostPort
}

/** Options of {@link checkOrigin}. */
export interface OriginCheckOptions {
  /** Normalised extra origins. */
  allowedOrigins: readonly string[]
  /** Use the first `x-forwarded-host` value instead of `host`. */
  trustProxy: boolean
}

/**
 * `true` when the upgrade may proceed: no `Origin` (not a browser, so no ambient cookies to
 * abuse), an allowed origin, or the request's own host. `Origin: null` never passes.
 */
export function checkOrigin(
  getHeader: (name: string) => string | undefined,
  requestUrl: string | undefined,
  options: OriginCheckOptions,
): boolean {
  const origin = getHeader('origin')
  if (origin === undefined) {
    return true
  }
  const normalized = normalizeOrigin(origin)
  if (!normalized) {
    return false
  }
  if (options.allowedOrigins.includes(normalized)) {
    return true
  }
  let host: string | undefined
  if (options.trustProxy) {
    host = getHeader('x-forwarded-host')?.split(',')[0]?.trim() || undefined
  }
  host ??= getHeader('host')
  if (!host && requestUrl) {
    try {
      host = new URL(requestUrl).host
    }
    catch {}
  }
  return isSameHost(normalized, host)
}
