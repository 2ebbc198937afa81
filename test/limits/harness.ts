/**
 * Harness of the limits suite: a proxy with `limits` whose `upgrade` is wrapped the way an app
 * authenticates (a user put into `request.context` before `proxy.upgrade(request)`), clients that
 * connect from another loopback address, the 429 a cap answers, and waits on `stats().limits`.
 * Everything listens on 127.0.0.1 port 0, registers itself with `track()` and is bounded in time.
 */
import type { Socket } from 'node:net'
import type { WebSocketProxy, WebSocketProxyOptions, WebSocketProxyStats } from '../../src/core/types'
import type { CrosswsLine, TestClient, Upstream } from '../helpers'
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { WebSocket } from 'ws'
import { createWebSocketProxy } from '../../src/index'
import { ctorOption, rawUpgrade, sleep, startProxy, track, waitFor, withTimeout } from '../helpers'

/** The 429 body of each cap (the refusal names the cap). */
export const REFUSAL_TEXT = {
  connections: 'Too many connections',
  perIp: 'Too many connections from this address',
  perUser: 'Too many connections for this user',
} as const

export type Cap = keyof typeof REFUSAL_TEXT

export const ZERO = { connections: 0, addresses: 0, users: 0 }

export interface WrapOptions {
  /** The user of this upgrade (`request.context.user`), e.g. from a header. */
  user?: (request: Request) => unknown
  /** `request.context.clientAddress` (what the Nitro runtime sets with `trustProxy`). */
  clientAddress?: (request: Request) => string | undefined
  /** Awaited before `proxy.upgrade` (an auth check that takes time). */
  before?: (request: Request) => Promise<void> | void
  /** Awaited after `proxy.upgrade` returned, before its result is handed to crossws. */
  after?: (request: Request) => Promise<void> | void
  /** Called on each crossws `message` hook call (passthrough relays below the hook). */
  onMessageHook?: () => void
}

/** The upgrade's context, created the way the core and the Nitro runtime create it when absent. */
function contextOf(request: Request): Record<string, unknown> {
  const holder = request as Request & { context?: Record<string, unknown> }
  if (!holder.context) Object.defineProperty(holder, 'context', { value: {}, enumerable: true, configurable: true, writable: true })
  return holder.context!
}

/**
 * `createWebSocketProxy({ ...ctorOption(), ...options })` on `line`, its `upgrade` wrapped: the
 * user (and client address) go into `request.context` before `proxy.upgrade(request)`, whose
 * result is returned as it is (on crossws 0.4 the core hands `request.context` to the peer).
 * `counts` has the `upgrade`, `open` and `message` hook calls crossws made (with passthrough on,
 * client messages are relayed below the `message` hook).
 */
export async function limitedProxy(line: CrosswsLine, options: WebSocketProxyOptions, wrap: WrapOptions = {}) {
  const proxy: WebSocketProxy = createWebSocketProxy({ ...ctorOption(), ...options })
  const counts = { opens: 0, upgrades: 0, messageHooks: 0 }
  const hooks = {
    ...proxy,
    async upgrade(request: Request) {
      counts.upgrades++
      await wrap.before?.(request)
      const context = contextOf(request)
      const user = wrap.user?.(request)
      if (user !== undefined) context.user = user
      const address = wrap.clientAddress?.(request)
      if (address !== undefined) context.clientAddress = address
      const result = await (proxy.upgrade as unknown as (request: Request) => unknown)(request)
      await wrap.after?.(request)
      return result
    },
    open(peer: any) {
      counts.opens++
      return proxy.open(peer)
    },
    message(peer: any, message: any) {
      counts.messageHooks++
      wrap.onMessageHook?.()
      return proxy.message(peer, message)
    },
  }
  const server = await startProxy(hooks, { crossws: line })
  // Newest first: this runs before the server (registered by startProxy) is closed.
  track(() => proxy.closeAll(1001, 'test over', 500))
  return { proxy, server, counts }
}

/** The user named by the `x-user` header (none without it). */
export function userFromHeader(request: Request): { id: string } | undefined {
  const id = request.headers.get('x-user')
  return id ? { id } : undefined
}

/** `stats().limits`, which must exist once a connection cap is set. */
export function limitsOf(proxy: WebSocketProxy): NonNullable<WebSocketProxyStats['limits']> {
  const limits = proxy.stats().limits
  if (!limits) throw new Error('stats().limits is missing although a connection cap is set')
  return limits
}

/** Waits (bounded) until `stats().limits` equals `expected`; says what it last saw. */
export async function waitLimits(proxy: WebSocketProxy, expected: typeof ZERO, label: string, timeout = 2_000): Promise<void> {
  await waitFor(() => JSON.stringify(proxy.stats().limits) === JSON.stringify(expected), {
    timeout,
    label: `stats().limits ${JSON.stringify(expected)} (${label})`,
    describe: () => ({ limits: proxy.stats().limits, open: proxy.stats().open }),
  })
}

/**
 * Sends an upgrade and expects the cap's refusal: 429, `Retry-After`, a body naming the cap, and
 * no handshake reaching the upstream (given 50 ms in which a dial would have arrived).
 */
export async function expectRefused(url: string, cap: Cap, upstream: Upstream | undefined, headers: Record<string, string> = {}, line?: string): Promise<void> {
  const before = upstream?.handshakes.length ?? 0
  if (cap === 'perIp' && line === '0.4') {
    // crossws 0.4's Node adapter shows `upgrade` no client address: the cap is applied in
    // `open`, after the 101, with a close 1008 naming it; still nothing is dialled.
    const ws = new WebSocket(url, { headers, handshakeTimeout: 2_000 })
    ws.on('error', () => {})
    track(() => { if (ws.readyState !== WebSocket.CLOSED) ws.terminate() })
    const closed = await withTimeout(new Promise<{ code: number, reason: string }>((resolve) => {
      ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))
    }), 2_500, `close of the ${cap} refusal`)
    if (closed.code !== 1008 || closed.reason !== REFUSAL_TEXT[cap]) {
      throw new Error(`Expected the ${cap} refusal (close 1008 ${JSON.stringify(REFUSAL_TEXT[cap])}), got ${JSON.stringify(closed)}`)
    }
    await sleep(50)
    if (upstream && upstream.handshakes.length !== before) {
      throw new Error(`A refused connection reached the upstream (${upstream.handshakes.length - before} handshake(s))`)
    }
    return
  }
  const response = await rawUpgrade(url, headers)
  response.close()
  const seen = { status: response.status, retryAfter: response.header('retry-after'), body: response.body }
  if (seen.status !== 429 || seen.retryAfter.length !== 1 || !(Number(seen.retryAfter[0]) > 0) || seen.body !== REFUSAL_TEXT[cap]) {
    throw new Error(`Expected the ${cap} refusal (429, Retry-After, ${JSON.stringify(REFUSAL_TEXT[cap])}), got ${JSON.stringify(seen)}`)
  }
  await sleep(50)
  if (upstream && upstream.handshakes.length !== before) {
    throw new Error(`A refused upgrade reached the upstream (${upstream.handshakes.length - before} handshake(s))`)
  }
}

/** A `ws` client like `wsConnect`'s, bound to `localAddress` (e.g. 127.0.0.2: another client address). */
export async function connectFrom(url: string, localAddress: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, { localAddress, headers, handshakeTimeout: 2_000 })
  ws.on('error', () => {})
  track(() => { if (ws.readyState !== WebSocket.CLOSED) ws.terminate() })
  await withTimeout(new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('unexpected-response', (_req, res) => reject(new Error(`Handshake answered ${res.statusCode}`)))
    ws.once('error', reject)
  }), 2_500, `open ${url} from ${localAddress}`)
  return ws
}

/** The TCP socket under a `ws` client. */
export function tcpOf(client: TestClient | WebSocket): Socket {
  const ws = 'ws' in client ? client.ws : client
  return (ws as unknown as { _socket: Socket })._socket
}

/** Drops the client's TCP connection with a reset (RST), no close frame. */
export function resetClient(client: TestClient | WebSocket): void {
  tcpOf(client).resetAndDestroy()
}

/** Sends `text` and expects it back. */
export async function echo(client: TestClient, text: string): Promise<void> {
  client.send(text)
  const message = await client.next()
  if (message.text !== text) throw new Error(`Expected the echo ${JSON.stringify(text)}, got ${JSON.stringify(message.text)}`)
}

/** Percentile `p` (0-100) of `values`. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

/**
 * Starts a hand-written upgrade over `net` and returns at once: the socket (to reset it
 * mid-handshake) and the answer's status code, or `'closed'` if the connection closed first.
 */
export function startUpgrade(url: string, headers: Record<string, string> = {}): { socket: Socket, answer: Promise<number | 'closed'> } {
  const target = new URL(url)
  const socket = connect(Number(target.port), target.hostname)
  socket.on('error', () => {})
  track(() => { socket.destroy() })
  const lines = [
    `GET ${target.pathname}${target.search} HTTP/1.1`,
    `Host: ${target.host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ]
  socket.once('connect', () => socket.write(`${lines.join('\r\n')}\r\n\r\n`))
  const answer = withTimeout(new Promise<number | 'closed'>((resolve) => {
    let head = ''
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1')
      const match = /^HTTP\/1\.1 (\d{3})/.exec(head)
      if (match) resolve(Number(match[1]))
    })
    socket.once('close', () => resolve('closed'))
  }), 15_000, `answer to the upgrade of ${url}`)
  return { socket, answer }
}
