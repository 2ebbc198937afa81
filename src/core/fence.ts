/**
 * The fence: the only module that reads private fields of `ws`, crossws or Node sockets.
 *
 * The relay is faster and more faithful when it reaches past public APIs: crossws 0.3's Node
 * adapter drops the text/binary flag (the raw `ws` socket keeps it), crossws 0.3 has no drain or
 * `bufferedAmount`, and frame passthrough reads the TCP socket under a `ws` socket. Each access
 * here checks the layout it relies on; when a check fails the caller gets `undefined`/`false` and
 * falls back to the public path (crossws hooks, the message relay). `NITRO_WS_PROXY_INTERNALS=0`
 * (read when a proxy is created) turns every such access off.
 */
import type { Peer } from 'crossws'

/** The raw `ws` socket behind a crossws Node peer (both lines), as far as the relay uses it. */
export interface NodeWebSocket {
  readonly readyState: number
  readonly bufferedAmount: number
  readonly protocol: string
  on: (event: string, listener: (...args: any[]) => void) => unknown
  send: (data: unknown, options?: { binary?: boolean }, cb?: (err?: Error) => void) => void
  close: (code?: number, reason?: string) => void
  terminate: () => void
  ping: (data?: unknown) => void
  pause: () => void
  resume: () => void
}

/** The TCP (or TLS) socket under a `ws` socket. */
export interface RawSocket {
  readonly bytesRead: number
  readonly bytesWritten: number
  readonly writableLength: number
  readonly destroyed: boolean
  write: (chunk: Buffer, ...rest: any[]) => boolean
  cork: () => void
  uncork: () => void
  once: (event: 'drain', listener: () => void) => unknown
  on: (event: 'data', listener: (chunk: Buffer) => void) => unknown
  removeListener: (event: 'data', listener: (chunk: Buffer) => void) => unknown
  listeners: (event: 'data') => Array<(chunk: Buffer) => void>
  end: () => void
}

interface ReceiverInternals {
  _state: number
  _bufferedBytes: number
  _fragmented: number
  _loop: boolean
  _errored: boolean
  _writableState?: { length: number }
  write: (chunk: Buffer) => boolean
}

type WsInternals = NodeWebSocket & {
  _socket?: RawSocket | null
  _receiver?: ReceiverInternals
  _extensions?: Record<string, unknown>
}

/** The client's TCP socket during a Node upgrade. */
export interface UpgradeSocket {
  remoteAddress?: string
  destroyed?: boolean
  once?: (event: 'close', listener: () => void) => unknown
  off?: (event: 'close', listener: () => void) => unknown
}

interface NodeRequestLike {
  headers: Record<string, string | string[] | undefined>
  httpVersionMajor?: number
  httpVersionMinor?: number
  socket?: UpgradeSocket
}

let enabled = true

/** Re-read `NITRO_WS_PROXY_INTERNALS` (called when a proxy is created). */
export function readInternalsSwitch(): boolean {
  const value = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.NITRO_WS_PROXY_INTERNALS
  enabled = !(value === '0' || value === 'false' || value === 'off')
  return enabled
}

// --- crossws ---------------------------------------------------------------------------------

/** The raw `ws` socket behind a crossws Node peer, or `undefined` (other adapters, fence off). */
export function getPeerSocket(peer: Peer): NodeWebSocket | undefined {
  if (!enabled) return undefined
  const ws = (peer as unknown as { _internal?: { ws?: NodeWebSocket } })._internal?.ws
  return ws && typeof ws.on === 'function' && typeof ws.pause === 'function' && typeof ws.ping === 'function'
    && typeof ws.send === 'function' && typeof ws.bufferedAmount === 'number'
    ? ws
    : undefined
}

/** A WHATWG (EventTarget) socket behind a crossws peer: Deno's and Cloudflare's adapters. */
export interface EventWebSocket {
  readonly readyState: number
  addEventListener: (type: 'close', listener: (event: { code?: number, reason?: string }) => void) => void
}

/**
 * The WHATWG socket behind a non-Node crossws peer, or `undefined`. crossws's Deno adapter (0.3
 * and 0.4) reports every client close to the `close` hook as `{}`: the code and reason are only
 * on the socket's own `close` event.
 */
export function getPeerEventSocket(peer: Peer): EventWebSocket | undefined {
  if (!enabled) return undefined
  const ws = (peer as unknown as { _internal?: { ws?: EventWebSocket & { on?: unknown } } })._internal?.ws
  return ws && typeof ws.addEventListener === 'function' && typeof ws.readyState === 'number' && typeof ws.on !== 'function'
    ? ws
    : undefined
}

/**
 * Where a runtime adapter that knows the client address before the upgrade leaves it on the
 * request (the Deno adapter wrapper of the Nitro module: `Deno.serve`'s connection info cannot be
 * read once the 101 is sent).
 */
export const kRemoteAddress = Symbol.for('nitro-ws-proxy.remote-address')

/** The Node request behind a crossws upgrade request: `_req` on 0.3, `runtime.node.req` on 0.4. */
export function getNodeRequest(request: Request): NodeRequestLike | undefined {
  const r = request as unknown as { _req?: NodeRequestLike, runtime?: { node?: { req?: NodeRequestLike } } }
  const req = r._req ?? r.runtime?.node?.req
  return req && typeof req.headers === 'object' ? req : undefined
}

/**
 * The Node request of a crossws **0.3** upgrade. On that line the adapter's `ws` server echoes
 * the first offered subprotocol by itself, reading it from this object's headers.
 */
export function getLegacyNodeRequest(request: Request): NodeRequestLike | undefined {
  const req = (request as unknown as { _req?: NodeRequestLike })._req
  return req && typeof req.headers === 'object' ? req : undefined
}

/** The Node request a crossws 0.4 Node peer was upgraded from (0.4 gives `upgrade` no access to it). */
export function getPeerNodeRequest(peer: Peer): NodeRequestLike | undefined {
  const req = (peer as unknown as { _internal?: { nodeReq?: NodeRequestLike } })._internal?.nodeReq
  return req && typeof req.headers === 'object' ? req : undefined
}

/** Whether a Node request is older than HTTP/1.1 (a WebSocket handshake needs 1.1, RFC 6455 §4.1). */
export function isBeforeHttp11(req: NodeRequestLike | undefined): boolean {
  const major = req?.httpVersionMajor
  return typeof major === 'number' && (major < 1 || (major === 1 && (req!.httpVersionMinor ?? 0) < 1))
}

/**
 * Where the Nitro 3 dev runtime (runtime/dev-upgrade-sockets.ts) records the socket of each
 * upgrade its dev worker's server receives, keyed by the Node request's `headers` object. Shared
 * through the global symbol registry: that runtime and this (bundled) core are separate modules.
 */
export const UPGRADE_SOCKETS = Symbol.for('nitro-ws-proxy.upgrade-sockets')

/** The client's socket during `upgrade` (Node adapters), to notice a client that leaves. */
export function getUpgradeSocket(request: Request): UpgradeSocket | undefined {
  const socket = getNodeRequest(request)?.socket ?? recordedUpgradeSocket(request)
  return socket && typeof socket.once === 'function' && typeof socket.off === 'function' ? socket : undefined
}

/**
 * crossws 0.4's Node adapter, when its caller hands it no web request (Nitro 3's dev worker),
 * builds a stub that keeps only the URL and, as `_init.headers`, the Node request's own headers
 * object: the socket is found through that object in the dev runtime's record.
 */
function recordedUpgradeSocket(request: Request): UpgradeSocket | undefined {
  const record = (globalThis as Record<symbol, unknown>)[UPGRADE_SOCKETS]
  if (!enabled || !(record instanceof WeakMap)) return undefined
  const headers = (request as unknown as { _init?: { headers?: unknown } })._init?.headers
  return headers !== null && typeof headers === 'object' ? record.get(headers) as UpgradeSocket | undefined : undefined
}

/** The client address during `upgrade`, before a peer exists. */
export function getUpgradeRemoteAddress(request: Request): string | undefined {
  return getNodeRequest(request)?.socket?.remoteAddress
    ?? (request as unknown as { [kRemoteAddress]?: string })[kRemoteAddress]
}

// --- ws sockets ------------------------------------------------------------------------------

/** The TCP socket under a `ws` socket, when its layout is the known one. */
export function getRawSocket(ws: NodeWebSocket): RawSocket | undefined {
  if (!enabled) return undefined
  const socket = (ws as WsInternals)._socket
  return socket && typeof socket.write === 'function' && typeof socket.cork === 'function'
    && typeof socket.bytesRead === 'number' && typeof socket.listeners === 'function'
    ? socket
    : undefined
}

function receiverOf(ws: NodeWebSocket): ReceiverInternals | undefined {
  const r = (ws as WsInternals)._receiver
  return r && typeof r._state === 'number' && typeof r._bufferedBytes === 'number'
    && typeof r._fragmented === 'number' && typeof r.write === 'function'
    ? r
    : undefined
}

/**
 * Whether a leg's bytes can be relayed frame by frame: an open `ws` socket of the known layout,
 * without extensions (a compressed frame cannot be copied as is), read only by `ws` itself.
 */
export function canRelayFrames(ws: NodeWebSocket): boolean {
  if (!enabled || ws.readyState !== 1) return false
  const socket = getRawSocket(ws)
  const extensions = (ws as WsInternals)._extensions
  return !!socket && !!receiverOf(ws)
    && (!extensions || Object.keys(extensions).length === 0)
    && socket.listeners('data').length === 1
}

/** The leg's receiver is between frames and holds nothing: its byte stream can change hands. */
export function atFrameBoundary(ws: NodeWebSocket): boolean {
  const r = receiverOf(ws)
  return !!r && r._state === 0 && r._bufferedBytes === 0 && r._fragmented === 0 && !r._loop && !r._errored
    && (r._writableState?.length ?? 0) === 0
}

/**
 * Read `ws`'s socket with `onData` instead of `ws`: returns the function that hands a control
 * frame to `ws`'s own receiver (close, ping, pong are still answered by `ws`), or `undefined`
 * (nothing changed) when the layout is unknown or the receiver is mid-frame.
 */
export function takeOverReading(ws: NodeWebSocket, onData: (this: any, chunk: Buffer) => void): ((frame: Buffer) => void) | undefined {
  if (!canRelayFrames(ws) || !atFrameBoundary(ws)) return undefined
  const socket = getRawSocket(ws)!
  const receiver = receiverOf(ws)!
  socket.removeListener('data', socket.listeners('data')[0]!)
  socket.on('data', onData)
  return frame => receiver.write(frame)
}

// --- holding writes while a frame is streamed --------------------------------------------------

const kGate = Symbol('nitro-ws-proxy.gate')

/**
 * Holds the writes `ws` makes on a socket (pongs, pings, close frames) while the relay streams a
 * data frame into it, so no control frame lands inside a frame (RFC 6455 §5.4).
 */
export class WriteGate {
  /** The socket's own `write`, used by the relay and to release held writes. */
  readonly write: (chunk: Buffer, ...rest: any[]) => boolean
  /** A frame is being streamed: writes of others wait in `held`. */
  closed = false
  private held: unknown[][] = []

  constructor(readonly socket: RawSocket) {
    this.write = socket.write
  }

  hold(): void {
    this.closed = true
  }

  /** The frame ended: let held writes through, in order. */
  release(): void {
    this.closed = false
    const held = this.held
    if (held.length === 0) return
    this.held = []
    for (const args of held) this.write.apply(this.socket, args as [Buffer])
  }

  push(args: unknown[]): void {
    this.held.push(args)
  }
}

/** The socket's `write` while gated: shared by all sockets, no closure per connection. */
function gatedWrite(this: RawSocket & { [kGate]: WriteGate }, ...args: unknown[]): boolean {
  const gate = this[kGate]
  if (!gate.closed) return gate.write.apply(this, args as [Buffer])
  gate.push(args)
  return true
}

/** Put a gate on a socket's writes (once per socket). */
export function gateWrites(socket: RawSocket): WriteGate {
  const s = socket as RawSocket & { [kGate]?: WriteGate }
  if (s[kGate]) return s[kGate]
  const gate = new WriteGate(socket)
  s[kGate] = gate
  ;(s as { write: unknown }).write = gatedWrite
  return gate
}

// --- servers that track sockets -----------------------------------------------------------------

/**
 * Tell Nitro's node-server graceful shutdown (its http-graceful-shutdown copy) that an upgraded
 * socket is busy: it destroys every socket it sees as idle the moment the signal arrives, and an
 * upgraded socket never carried a response, so it looks idle. Marked busy, it is left to the drain
 * and Nitro waits for it to close (up to its shutdown timeout). No effect on other servers.
 */
export function markSocketBusy(socket: RawSocket | undefined): void {
  const s = socket as (RawSocket & { _isIdle?: boolean }) | undefined
  if (s && s._isIdle === true) s._isIdle = false
}

// --- ws clients opened on a socket the proxy dialled itself -------------------------------------

/**
 * A `ws` client in its `CONNECTING` state whose handshake the proxy performs itself (upstream
 * dial). Built with ws's server-side constructor (`new WebSocket(null)`, the path its own server
 * takes), turned into a client, then given the upgraded socket with `setSocket` once the 101 has
 * been checked: the same calls ws's own client makes after its `http.ClientRequest` upgrade.
 */
export interface PendingClient extends NodeWebSocket {
  emit: (event: string, ...args: unknown[]) => boolean
  listenerCount: (event: string) => number
}

interface PendingInternals {
  _isServer: boolean
  _socket: unknown
  _receiver: unknown
  _readyState: number
  _protocol: string
  _extensions: Record<string, unknown>
  _url: string | undefined
  _req: unknown
  _bufferedAmount: number
  _errorEmitted: boolean
  setSocket: (socket: unknown, head: Buffer, options: Record<string, unknown>) => void
  emitClose: () => void
}

/** ws's own client defaults (initAsClient, ws 8.x), for the constructor and for `setSocket`. */
const CLIENT_OPTIONS = Object.freeze({ autoPong: true, closeTimeout: 30_000, maxPendingAutoPongs: 60 })
const SET_SOCKET_OPTIONS = Object.freeze({
  allowSynchronousEvents: true,
  maxBufferedChunks: 256 * 1024,
  maxFragments: 16 * 1024,
  maxPayload: 100 * 1024 * 1024,
  skipUTF8Validation: false,
})

/** Constructors whose instances failed the layout check: never tried again. */
const unadoptable = new WeakSet<object>()

/**
 * Whether `Ctor` is `ws`'s own `WebSocket` class, not a subclass (whose overrides the adoption
 * would skip) or another library: the class itself defines the methods the adoption calls.
 */
export function canAdoptClientSocket(Ctor: unknown): boolean {
  if (!enabled || typeof Ctor !== 'function' || unadoptable.has(Ctor)) return false
  const c = Ctor as unknown as { CONNECTING?: unknown, prototype?: Record<string, unknown> }
  const proto = c.prototype
  return !!proto && c.CONNECTING === 0 && Object.hasOwn(proto, 'setSocket') && Object.hasOwn(proto, 'emitClose')
    && Object.hasOwn(proto, 'terminate') && Object.hasOwn(proto, 'pause') && typeof proto.setSocket === 'function'
    && typeof proto.emitClose === 'function' && typeof proto.on === 'function'
}

/**
 * A `CONNECTING` client for `href`, or `undefined` when the instance's layout is not the known one.
 * It must get its socket ({@link setPendingStream}) before anything may close it: `close()` and
 * `terminate()` abort the handshake on that socket.
 */
export function createPendingClient(Ctor: new (...args: any[]) => unknown, href: string): PendingClient | undefined {
  const ws = new Ctor(null, undefined, CLIENT_OPTIONS) as PendingInternals
  if (ws._isServer !== true || ws._socket !== null || ws._receiver !== null || ws._readyState !== 0
    || ws._protocol !== '' || typeof ws._extensions !== 'object' || ws._extensions === null
    || Object.keys(ws._extensions).length !== 0 || !('_closeTimeout' in ws)) {
    unadoptable.add(Ctor)
    return undefined
  }
  ws._isServer = false // masks its frames, expects unmasked ones
  ws._url = href
  ws._bufferedAmount = 0
  return ws as unknown as PendingClient
}

/**
 * The socket carrying the handshake: `close()`/`terminate()` while `CONNECTING` destroy it and
 * then emit `error` and `close`, as they do with ws's own request.
 */
export function setPendingStream(ws: PendingClient, socket: unknown): void {
  (ws as unknown as PendingInternals)._req = socket
}

/** The 101 was checked: hand the socket (and bytes read past the response head) to `ws`; emits `open`. */
export function completePendingClient(ws: PendingClient, socket: unknown, head: Buffer, protocol: string): void {
  const w = ws as unknown as PendingInternals
  w._req = null
  w._protocol = protocol
  w.setSocket(socket, head, SET_SOCKET_OPTIONS)
}

/** The handshake failed: `error` then `close` (1006), as ws's client does. */
export function failPendingClient(ws: PendingClient, error: Error): void {
  const w = ws as unknown as PendingInternals
  w._req = null
  w._readyState = 2
  w._errorEmitted = true
  ws.emit('error', error)
  w.emitClose()
}
