import type { ProxyPeer } from '../core/types'

interface NodeSocketLike { remoteAddress?: string, encrypted?: boolean }
interface NodeRequestLike { socket?: NodeSocketLike, headers?: Record<string, string | string[] | undefined> }

/** Where the server sits, for what its socket can tell about the client. */
export interface ForwardedContext {
  /**
   * The server is Nitro's dev worker behind the dev server (`nitropack dev`, `nuxi dev`). Its
   * proxy keeps `x-forwarded-*` copies a client sent (it only fills absent ones), so nothing in
   * them can be trusted: `for` is the dev server's own loopback address, `proto` is `http`.
   */
  devProxy?: boolean
}

/**
 * `x-forwarded-for`, `-proto` and `-host` for the upstream handshake, computed by the proxy.
 *
 * Client copies are never passed on: `for` is the client socket's address and `proto` whether
 * that socket is TLS (`https`) or not (`http`); `host` is the `Host` the client asked for. When
 * a production server has no socket address (it listens on a Unix socket behind a reverse proxy
 * such as nginx, which appends its hop), `for` and `proto` are the last entries of the incoming
 * headers: appended by that proxy, not written by the client.
 */
export function forwardedHeaders(peer: ProxyPeer, context: ForwardedContext = {}): Record<string, string> {
  const { request } = peer
  const req = nodeRequest(request)
  const socket = req?.socket ?? (peer as { _internal?: { nodeReq?: { socket?: NodeSocketLike } } })._internal?.nodeReq?.socket
  const remote = peer.remoteAddress || socket?.remoteAddress
  // The Node request's own (plain, lower-cased) headers when there is one: reading
  // `request.headers` on crossws 0.3 builds a `Headers` copy of them, once per connection.
  const nodeHeaders = req?.headers
  const header = (name: string): string | null => {
    if (!nodeHeaders) return request.headers.get(name)
    const value = nodeHeaders[name]
    return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value
  }
  const headers: Record<string, string> = {}
  if (context.devProxy && !remote) {
    headers['x-forwarded-for'] = '127.0.0.1'
    headers['x-forwarded-proto'] = 'http'
    const host = header('host')
    if (host) headers['x-forwarded-host'] = host
    return headers
  }
  const address = remote || lastHop(header('x-forwarded-for'))
  if (address) headers['x-forwarded-for'] = address
  headers['x-forwarded-proto'] = socket?.encrypted
    ? 'https'
    : remote
      ? (socket ? 'http' : protoOfUrl(request.url))
      : (lastHop(header('x-forwarded-proto')) === 'https' ? 'https' : 'http')
  const host = header('host')
  if (host) headers['x-forwarded-host'] = host
  return headers
}

/**
 * The Node request behind a crossws Node upgrade request (0.3: `_req`, 0.4: `runtime.node.req`).
 * crossws 0.4's Node peer carries a stub request without either (its URL's scheme even comes from
 * the client's `x-forwarded-proto`): the caller falls back to the peer's own `nodeReq`.
 */
function nodeRequest(request: unknown): NodeRequestLike | undefined {
  const r = request as { _req?: NodeRequestLike, runtime?: { node?: { req?: NodeRequestLike } } }
  const req = r._req ?? r.runtime?.node?.req
  return req && typeof req.headers === 'object' && req.headers !== null ? req : req?.socket ? { socket: req.socket } : undefined
}

function protoOfUrl(url: string): 'http' | 'https' {
  return /^(?:https|wss):/i.test(url) ? 'https' : 'http'
}

function lastHop(value: string | null): string | undefined {
  if (!value) return undefined
  const hops = value.split(',')
  return hops[hops.length - 1]!.trim() || undefined
}
