import type { ResolvedProxyOptions } from './options'
import type { ProxyHeadersInit, ProxyPeer } from './types'
import { dialRaw } from './dial'

/** Handlers a connection gives to its upstream socket. */
export interface UpstreamHandlers {
  open: () => void
  message: (data: any, isBinary: boolean) => void
  /** `socket`: the socket the event is from (a connection ignores sockets it gave up on). */
  close: (code: number, reason: string, socket: unknown) => void
  error: (error: unknown, socket: unknown) => void
  pong: () => void
  /** `ws` only: the upstream answered the handshake with a non-101 HTTP status. */
  unexpectedResponse?: (status: number, socket: unknown) => void
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
    up.addEventListener('open', handlers.open)
    up.addEventListener('message', (event: MessageEvent) => handlers.message(event.data, typeof event.data !== 'string'))
    up.addEventListener('close', (event: CloseEvent) => handlers.close(event.code, event.reason, up))
    up.addEventListener('error', (event: Event & { error?: unknown }) => handlers.error(event.error ?? event, up))
    return up
  }
  up.on('open', handlers.open)
  up.on('message', handlers.message)
  up.on('close', (code: number, reason: Buffer) => handlers.close(code, reason.toString(), up))
  up.on('error', (error: unknown) => handlers.error(error, up))
  up.on('pong', handlers.pong)
  if (handlers.unexpectedResponse) {
    const onStatus = handlers.unexpectedResponse
    up.on('unexpected-response', (_req: unknown, res: { statusCode?: number }) => {
      onStatus(res.statusCode ?? 502, up)
      // With a listener here `ws` does not fail the handshake itself: abort it, so `error` follows.
      up.terminate()
    })
  }
  return up
}
