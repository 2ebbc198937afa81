import type { ResolvedProxyOptions } from './options'
import type { ProxyHeadersInit, ProxyPeer } from './types'
import { dialRaw } from './dial'

/** What a connection answers its upstream socket's events with (methods: no closure per dial). */
export interface UpstreamHandlers {
  upstreamOpen: () => void
  upstreamMessage: (data: any, isBinary: boolean) => void
  /** `socket`: the socket the event is from (a connection ignores sockets it gave up on). */
  upstreamClose: (code: number, reason: string, socket: unknown) => void
  upstreamError: (error: unknown, socket: unknown) => void
  upstreamPong: () => void
  /** `ws` only: the upstream answered the handshake with a non-101 HTTP status. */
  upstreamAnswered: (status: number, socket: unknown) => void
}

/** Where a `ws` socket (upstream, or a client's under crossws) keeps the connection it belongs to. */
export const kConnection = Symbol('nitro-ws-proxy.connection')

type WsCarrier = { [kConnection]: UpstreamHandlers, terminate: () => void }

// Listeners of `ws` upstream sockets, shared by every connection: `this` is the socket.
function wsOpen(this: WsCarrier): void { this[kConnection].upstreamOpen() }
function wsMessage(this: WsCarrier, data: any, isBinary: boolean): void { this[kConnection].upstreamMessage(data, isBinary) }
function wsClose(this: WsCarrier, code: number, reason: Buffer): void { this[kConnection].upstreamClose(code, reason.toString(), this) }
function wsError(this: WsCarrier, error: unknown): void { this[kConnection].upstreamError(error, this) }
function wsPong(this: WsCarrier): void { this[kConnection].upstreamPong() }
function wsUnexpectedResponse(this: WsCarrier, _req: unknown, res: { statusCode?: number }): void {
  this[kConnection].upstreamAnswered(res.statusCode ?? 502, this)
  // With a listener here `ws` does not fail the handshake itself: abort it, so `error` follows.
  this.terminate()
}

function toHeaderRecord(init: ProxyHeadersInit): Record<string, string> {
  // `ws` spreads `headers` as a plain object: a `Headers` instance or pairs would vanish. A plain
  // object (what the Nitro runtime builds per connection) is copied without a `Headers` round
  // trip; Node's HTTP client validates names and values either way.
  const record: Record<string, string> = {}
  if (!(init instanceof Headers) && !Array.isArray(init)) {
    for (const name in init) {
      const value = init[name]
      if (value !== undefined && value !== null) record[name.toLowerCase()] = String(value)
    }
    return record
  }
  for (const [name, value] of new Headers(init)) record[name] = value
  return record
}

/**
 * `ws` offers permessage-deflate by default. The proxy does not: compressing the upstream leg
 * costs a zlib context per connection (hundreds of KiB) and CPU per message, and it would turn
 * off frame passthrough. `webSocketOptions: { perMessageDeflate: true }` turns it back on.
 */
const WS_DEFAULTS = Object.freeze({ perMessageDeflate: false })

/** The constructor's third argument: `webSocketOptions` with `headers` applied on top. */
export function buildConstructorOptions(o: ResolvedProxyOptions, peer: ProxyPeer): Record<string, unknown> | undefined {
  const extra = typeof o.webSocketOptions === 'function' ? o.webSocketOptions(peer) : o.webSocketOptions
  const headers = typeof o.headers === 'function' ? o.headers(peer) : o.headers
  if (!extra && !headers) return o.whatwg ? undefined : WS_DEFAULTS
  const merged: Record<string, unknown> = o.whatwg ? { ...extra } : { ...WS_DEFAULTS, ...extra }
  if (headers) merged.headers = toHeaderRecord(headers)
  return merged
}

/** Dial the upstream and attach every listener at once, so no early frame or error is missed. */
export function dialUpstream(
  o: ResolvedProxyOptions,
  url: URL,
  protocols: string[] | undefined,
  ctorOptions: Record<string, unknown> | undefined,
  handlers: UpstreamHandlers,
): any {
  const Ctor = o.WebSocket as any
  let up: any
  // ws's own class: the raw handshake (dial.ts) when nothing needs ws's HTTP client.
  if (!o.whatwg) up = dialRaw(Ctor, url, protocols, ctorOptions) ?? (ctorOptions ? new Ctor(url, protocols, ctorOptions) : new Ctor(url, protocols))
  // undici, Bun and Deno send handshake headers given in a `{ protocols, headers }` dictionary.
  else if (ctorOptions && o.headersInit) up = new Ctor(url, protocols ? { ...ctorOptions, protocols } : ctorOptions)
  else up = new Ctor(url, protocols)
  if (o.whatwg) {
    up.binaryType = 'arraybuffer'
    up.addEventListener('open', () => handlers.upstreamOpen())
    up.addEventListener('message', (event: MessageEvent) => handlers.upstreamMessage(event.data, typeof event.data !== 'string'))
    up.addEventListener('close', (event: CloseEvent) => handlers.upstreamClose(event.code, event.reason, up))
    up.addEventListener('error', (event: Event & { error?: unknown }) => handlers.upstreamError(event.error ?? event, up))
    return up
  }
  up[kConnection] = handlers
  up.on('open', wsOpen)
  up.on('message', wsMessage)
  up.on('close', wsClose)
  up.on('error', wsError)
  up.on('pong', wsPong)
  up.on('unexpected-response', wsUnexpectedResponse)
  return up
}
