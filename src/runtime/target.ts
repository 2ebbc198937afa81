/**
 * Upstream targets of `routeRules` and the mapping of a client path onto them.
 *
 * Pure functions, shared by the build-time validation (`src/nitro/rules.ts`) and the runtime
 * handler: a target that passes the build is parsed the same way in the server.
 */

/** A rule target, split once so that every connection only concatenates strings. */
export interface ParsedTarget {
  /** The target without its trailing `/**` and query, e.g. `ws://host:8080/base`. */
  base: string
  /** `true` when the target ended with `/**`: the client path below the route is appended. */
  wildcard: boolean
  /** The target's own query, without `?` (may be empty). */
  query: string
  /** `base` parsed, to check every mapped URL against. */
  url: URL
}

const SCHEME_RE = /^(?:ws|wss|ws\+unix):/i

/**
 * Parse a rule target (`ws://`, `wss://` or `ws+unix:` URL, optionally ending with `/**`).
 * Returns an error message (for `... target <message>`) instead of throwing.
 */
export function parseTarget(input: unknown): ParsedTarget | string {
  if (typeof input !== 'string' || !SCHEME_RE.test(input.trim())) {
    return `must be a ws://, wss:// or ws+unix: URL, got ${describe(input)}`
  }
  const value = input.trim()
  if (value.includes('#')) return `must not contain a #fragment, got ${describe(input)}`
  const q = value.indexOf('?')
  let base = q === -1 ? value : value.slice(0, q)
  const query = q === -1 ? '' : value.slice(q + 1)
  const wildcard = base.endsWith('/**')
  if (wildcard) base = base.slice(0, -3)
  if (base.includes('*')) return `may only use a wildcard as a trailing /**, got ${describe(input)}`
  let url: URL
  try {
    url = new URL(base)
  }
  catch {
    return `must be a ws://, wss:// or ws+unix: URL, got ${describe(input)}`
  }
  if (url.protocol !== 'ws+unix:' && !url.hostname) return `must name a host, got ${describe(input)}`
  if (url.protocol === 'ws+unix:' && url.pathname.length <= 1) return `must name a socket path (ws+unix:/path/to.sock:/request/path), got ${describe(input)}`
  if (url.protocol === 'ws+unix:' && wildcard && !url.pathname.includes(':')) {
    // Without `:/request/path`, an appended client path would extend the socket path.
    return `with /** must give a request path after the socket (ws+unix:/path/to.sock:/base/**), got ${describe(input)}`
  }
  // `ws://host/base/` + `/a` must not become `//a`.
  if (wildcard) base = base.replace(/\/+$/, '')
  return { base, wildcard, query, url: new URL(base) }
}

/**
 * Where a client path goes. `suffix` is the raw path below the route prefix (`''` or `/...`),
 * `query` the raw client query without `?`. Returns `undefined` when the path is unsafe or the
 * result would leave the target's host or base path: the caller refuses instead of dialling.
 */
export function mapTarget(target: ParsedTarget, suffix: string, query: string): string | undefined {
  if (!isSafeSuffix(suffix) || !isSafeQuery(query)) return undefined
  const path = target.wildcard ? suffix : ''
  const q = [target.query, query].filter(Boolean).join('&')
  const mapped = `${target.base}${path}${q ? `?${q}` : ''}`
  let url: URL
  try {
    url = new URL(mapped)
  }
  catch {
    return undefined
  }
  const { url: baseUrl } = target
  if (url.protocol !== baseUrl.protocol || url.host !== baseUrl.host
    || url.username !== baseUrl.username || url.password !== baseUrl.password) {
    return undefined
  }
  if (target.wildcard) {
    // The URL parser must not have changed anything: no dot segments, no re-encoding.
    const basePath = baseUrl.pathname === '/' ? '' : baseUrl.pathname
    const expected = `${basePath}${path}` || '/'
    if (url.pathname !== expected) return undefined
  }
  return mapped
}

/** Split the raw path and query out of an upgrade request URL (absolute on Node, or a path). */
/**
 * The request target as the client sent it. A WHATWG `Request.url` is normalised (`/a/../b` and
 * `/a/%2e%2e/b` become `/b`); on Node, Nitro 3's request (srvx) keeps the raw one on
 * `runtime.node.req.url`, so path escapes are refused rather than silently mapped elsewhere.
 * crossws 0.3's request (nitropack 2) has no `runtime`: its `url` is used as before.
 */
export function rawRequestUrl(request: { url: string }): string {
  const raw = (request as { runtime?: { node?: { req?: { url?: unknown } } } }).runtime?.node?.req?.url
  return typeof raw === 'string' && raw.startsWith('/') ? raw : request.url
}

export function splitRequestUrl(requestUrl: string): { path: string, query: string } {
  const origin = /^[a-z][a-z\d+.-]*:\/\/[^/?#]*/i.exec(requestUrl)
  const rest = origin ? requestUrl.slice(origin[0].length) : requestUrl
  const q = rest.indexOf('?')
  return {
    path: (q === -1 ? rest : rest.slice(0, q)) || '/',
    query: q === -1 ? '' : rest.slice(q + 1),
  }
}

/**
 * The part of `path` below `prefix` (`''` for the bare prefix, else `/...`), or `undefined`
 * when `path` is not under `prefix` (`/live` covers `/live` and `/live/x`, not `/lively`).
 */
export function pathBelow(path: string, prefix: string): string | undefined {
  if (prefix === '' || prefix === '/') return path === '/' ? '' : path
  if (path === prefix) return ''
  if (path.startsWith(prefix) && path[prefix.length] === '/') return path.slice(prefix.length)
  return undefined
}

// Control characters, space, backslash, `@`, `#` and encoded slash/backslash/dot/NUL.
// eslint-disable-next-line no-control-regex
const UNSAFE_PATH_RE = /[\u0000-\u0020\u007F\\@#]|%(?:2f|5c|2e|00)/i
// eslint-disable-next-line no-control-regex
const UNSAFE_QUERY_RE = /[\u0000-\u0020\u007F#]/

function isSafeSuffix(suffix: string): boolean {
  if (suffix === '') return true
  if (suffix[0] !== '/' || suffix.includes('//') || UNSAFE_PATH_RE.test(suffix)) return false
  for (const segment of suffix.slice(1).split('/')) {
    if (segment === '.' || segment === '..') return false
    let decoded: string
    try {
      decoded = decodeURIComponent(segment)
    }
    catch {
      return false
    }
    if (decoded === '.' || decoded === '..' || /[/\\\0]/.test(decoded)) return false
  }
  return true
}

function isSafeQuery(query: string): boolean {
  return !UNSAFE_QUERY_RE.test(query)
}

function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value)
}
