import type { Peer } from 'crossws'
import type { ResolvedProxyOptions } from './options'
import type { ProxyPeer, WebSocketProxyCloseCause, WebSocketProxyCloseDetails } from './types'
import type { NodeWebSocket } from './node-socket'
import type { ProxyCounters } from './stats'
import { toClientCloseCode, toUpstreamCloseCode, truncateReason } from './close-codes'
import { canPassThrough, startFrameRelay } from './frame-relay'
import type { FrameTarget } from './frame-relay'
import { getNodeWebSocket } from './node-socket'
import { textBufferCost } from './text-size'
import { buildConstructorOptions, dialUpstream, SEND_BINARY, SEND_TEXT } from './upstream'

const CONNECTING = 0
const OPEN = 1
/** How often a paused side re-checks the other side's queue when no `drain` event comes. */
const DRAIN_POLL_MS = 25

/** State shared by every connection of one proxy instance. */
export interface ProxyRuntime {
  readonly o: ResolvedProxyOptions
  readonly counters: ProxyCounters
  readonly connections: Set<ProxyConnection>
  /** Called when a connection starts, so the heartbeat sweep can run while any exist. */
  onConnectionStart: () => void
}

/** How a connection ends: who ended it, what each side is told, and what is reported. */
interface Ending {
  source: WebSocketProxyCloseDetails['source']
  /** Close code/reason for the client; omitted when the client ended it. */
  clientCode?: number
  clientReason?: string
  /** Close code/reason for the upstream; `undefined` code sends a close frame without code. */
  upstreamCode?: number
  upstreamReason?: string
  terminateClient?: boolean
  terminateUpstream?: boolean
  /** Code/reason as received (client/upstream) or sent (proxy), for `onUpstreamClose`. */
  code?: number
  reason?: string
  error?: unknown
  /** HTTP status for an upstream-first handshake that fails before the client is accepted. */
  status?: number
}

function byteSize(data: any): number {
  return typeof data === 'string' ? data.length : data.byteLength
}

function asText(data: any): string {
  if (typeof data === 'string') return data
  // A view over the same memory (no copy) for ArrayBuffer and Uint8Array alike.
  const bytes = data instanceof ArrayBuffer ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  return bytes.toString('utf8')
}

/**
 * One client and its upstream. Every event handler first checks `closed`, and `end()` is the
 * only way out, so each connection is torn down, counted and reported exactly once.
 */
export class ProxyConnection implements FrameTarget {
  closed = false
  upstreamOpen = false
  peer: Peer | undefined
  /** Raw `ws` socket of the client on Node adapters: relayed directly, keeping the frame type. */
  client: NodeWebSocket | undefined
  up: any
  url: URL | undefined

  /** Client → upstream frames waiting for the upstream to open: data, isBinary, data, ... */
  private queue: unknown[] | null = []
  private queuedCost = 0
  /** Upstream → client frames received before the client was accepted (upstream-first). */
  private backlog: unknown[] | null = null

  private connectTimer: ReturnType<typeof setTimeout> | undefined
  private idleTimer: ReturnType<typeof setTimeout> | undefined
  private adoptTimer: ReturnType<typeof setTimeout> | undefined
  private drainTimer: ReturnType<typeof setInterval> | undefined
  private lastClientActivity = 0
  private upstreamStatus: number | undefined
  private settleFirst: ((status: number | undefined) => void) | undefined

  /** Reading from the upstream is paused because the client is slow (and vice versa). */
  upstreamPaused = false
  clientPaused = false
  private waitingClientDrain = false
  private waitingUpstreamDrain = false

  /** Heartbeat: a ping is outstanding on the leg, and whether any frame came back since. */
  clientPinged = false
  clientSeen = true
  upstreamPinged = false
  upstreamSeen = true

  constructor(readonly rt: ProxyRuntime, readonly pp: ProxyPeer, readonly offer: string[] | undefined) {
    rt.connections.add(this)
    rt.counters.open++
    rt.counters.opened++
    rt.onConnectionStart()
  }

  // --- lifecycle -------------------------------------------------------------------------

  /** Default mode: the client is accepted; dial the upstream, buffering client frames meanwhile. */
  start(peer: Peer): void {
    this.attachClient(peer)
    this.connect()
  }

  /**
   * Upstream-first mode: dial before the client is accepted. Resolves `undefined` once the
   * upstream is open, or the HTTP status to refuse the client with.
   */
  connectFirst(): Promise<number | undefined> {
    this.backlog = []
    return new Promise((resolve) => {
      this.settleFirst = resolve
      this.connect()
    })
  }

  /** Upstream-first mode: the client handshake completed; relay what the upstream already sent. */
  adopt(peer: Peer): void {
    clearTimeout(this.adoptTimer)
    this.attachClient(peer)
    const backlog = this.backlog
    this.backlog = null
    if (backlog) {
      for (let i = 0; i < backlog.length && !this.closed; i += 2) this.toClient(backlog[i], backlog[i + 1] as boolean)
    }
    this.startPassthrough()
    if (!this.closed && this.upstreamPaused && !this.rt.o.whatwg) {
      this.upstreamPaused = false
      this.up.resume()
    }
  }

  /** Upstream-first mode: give up on a client whose handshake never completes. */
  expectAdoption(ms: number): void {
    this.adoptTimer = setTimeout(() => this.end('client', { source: 'client', upstreamCode: 1001, upstreamReason: 'Client handshake failed' }), ms)
    this.adoptTimer.unref?.()
  }

  private attachClient(peer: Peer): void {
    this.peer = peer
    const client = getNodeWebSocket(peer)
    if (client) {
      this.client = client
      client.on('message', this.fromClient)
      client.on('pong', this.onClientPong)
    }
    const idle = this.rt.o.clientIdleTimeout
    if (idle > 0) {
      this.lastClientActivity = Date.now()
      this.idleTimer = setTimeout(checkIdle, idle, this)
    }
  }

  private connect(): void {
    const o = this.rt.o
    if (o.connectTimeout > 0) {
      this.connectTimer = setTimeout(onConnectTimeout, o.connectTimeout, this)
    }
    let target: ReturnType<Extract<typeof o.target, (...args: any[]) => any>> | string | URL
    try {
      target = typeof o.target === 'function' ? o.target(this.pp) : o.target
    }
    catch (error) {
      return this.fail('setup-failed', error)
    }
    if (target && typeof (target as Promise<unknown>).then === 'function') {
      (target as Promise<string | URL>).then(url => this.dial(url), error => this.fail('setup-failed', error))
    }
    else {
      this.dial(target as string | URL)
    }
  }

  private dial(target: string | URL): void {
    if (this.closed) return
    const o = this.rt.o
    try {
      this.url = target instanceof URL ? target : new URL(target)
    }
    catch (error) {
      return this.fail('setup-failed', error)
    }
    try {
      o.onUpstreamConnect?.(this.pp, { url: this.url })
      // The callback may have closed the client itself: then the upstream is not dialled.
      if (this.closed || (this.client && this.client.readyState > OPEN)) {
        return this.end('client', { source: 'client' })
      }
      const protocols = this.offer?.length ? this.offer : undefined
      this.up = dialUpstream(o, this.url, protocols, buildConstructorOptions(o, this.pp), {
        open: this.onUpstreamOpen,
        message: this.fromUpstream,
        close: this.onUpstreamClose,
        error: this.onUpstreamError,
        pong: this.onUpstreamPong,
        unexpectedResponse: this.settleFirst ? status => this.onUnexpectedResponse(status) : undefined,
      })
    }
    catch (error) {
      this.fail('setup-failed', error)
    }
  }

  private fail(cause: 'setup-failed' | 'upstream-error', error: unknown): void {
    this.end(cause, {
      source: cause === 'setup-failed' ? 'proxy' : 'upstream',
      clientCode: 1011,
      clientReason: cause === 'setup-failed' ? 'Upstream setup failed' : 'Upstream error',
      code: cause === 'setup-failed' ? 1011 : undefined,
      reason: cause === 'setup-failed' ? 'Upstream setup failed' : undefined,
      error,
      status: this.upstreamStatus ?? 502,
    })
  }

  // --- the relay (hot path) --------------------------------------------------------------

  /** A client frame: relay it, or buffer it while the upstream is connecting. */
  readonly fromClient = (data: any, isBinary: boolean): void => {
    if (this.closed) return
    this.clientSeen = true
    if (this.idleTimer !== undefined) this.lastClientActivity = Date.now()
    if (this.upstreamOpen) {
      this.toUpstream(data, isBinary)
      return
    }
    const limit = this.rt.o.maxBufferSize
    const cost = isBinary ? byteSize(data) : textBufferCost(data)
    if (limit > 0 && this.queuedCost + cost > limit) {
      this.end('buffer-limit', { source: 'proxy', clientCode: 1009, clientReason: 'Proxy buffer limit exceeded', upstreamCode: 1001, code: 1009, reason: 'Proxy buffer limit exceeded' })
      return
    }
    this.queue!.push(data, isBinary)
    this.queuedCost += cost
  }

  /** Send one client message upstream with its frame type (also how the pre-open queue flushes). */
  private toUpstream(data: any, isBinary: boolean): void {
    const c = this.rt.counters
    c.messagesToUpstream++
    c.bytesToUpstream += byteSize(data)
    const up = this.up
    if (this.rt.o.whatwg) {
      up.send(isBinary ? data : asText(data))
    }
    else {
      if (!this.upstreamCorked) this.corkUpstream()
      up.send(data, isBinary ? SEND_BINARY : SEND_TEXT)
    }
    if (up.bufferedAmount > this.rt.o.highWaterMark) this.upstreamBackpressure()
  }

  /** An upstream frame: relay it to the client with its frame type. */
  readonly fromUpstream = (data: any, isBinary: boolean): void => {
    if (this.closed) return
    this.upstreamSeen = true
    if (this.peer) this.toClient(data, isBinary)
    else this.backlog!.push(data, isBinary)
  }

  private toClient(data: any, isBinary: boolean): void {
    const c = this.rt.counters
    c.messagesToClient++
    c.bytesToClient += byteSize(data)
    const client = this.client
    if (client) {
      if (!this.clientCorked) this.corkClient()
      client.send(data, isBinary ? SEND_BINARY : SEND_TEXT)
      if (client.bufferedAmount > this.rt.o.highWaterMark) this.clientBackpressure()
      return
    }
    const peer = this.peer!
    peer.send(isBinary ? data : asText(data))
    const cap = this.rt.o.maxBufferedAmount
    if (cap > 0 && ((peer as { bufferedAmount?: number }).bufferedAmount ?? 0) > cap) this.clientTooSlow()
  }

  // --- frame passthrough -----------------------------------------------------------------

  private clientRelayed = false
  private upstreamRelayed = false
  private passthroughTries = 0

  /**
   * Once both legs are open raw `ws` sockets without extensions, relay data frames byte for
   * byte (see frame-relay.ts). A leg whose receiver is mid-frame is retried on a later turn.
   */
  startPassthrough(): void {
    const client = this.client
    if (this.closed || !client || !this.rt.o.passthrough || this.rt.o.whatwg) return
    if (!canPassThrough(client, this.up)) return
    if (!this.clientRelayed) this.clientRelayed = startFrameRelay(client, this, true)
    if (!this.upstreamRelayed) this.upstreamRelayed = startFrameRelay(this.up, this, false)
    if ((!this.clientRelayed || !this.upstreamRelayed) && ++this.passthroughTries < 100) {
      setImmediate(retryPassthrough, this)
    }
  }

  /** A whole data frame from one leg (passthrough): write it as is to the other leg. */
  frame(fromClient: boolean, slices: Buffer[], payloadLength: number, fin: boolean): void {
    if (this.closed) return
    const c = this.rt.counters
    if (fromClient) {
      this.clientSeen = true
      if (this.idleTimer !== undefined) this.lastClientActivity = Date.now()
      c.bytesToUpstream += payloadLength
      if (fin) c.messagesToUpstream++
      const up = this.up
      if (!this.upstreamCorked) this.corkUpstream()
      writeSlices(up._socket, slices)
      if (up.bufferedAmount > this.rt.o.highWaterMark) this.upstreamBackpressure()
    }
    else {
      this.upstreamSeen = true
      c.bytesToClient += payloadLength
      if (fin) c.messagesToClient++
      const client = this.client!
      if (!this.clientCorked) this.corkClient()
      writeSlices(client._socket, slices)
      if (client.bufferedAmount > this.rt.o.highWaterMark) this.clientBackpressure()
    }
  }

  frameTooBig(fromClient: boolean): void {
    this.end('buffer-limit', {
      source: 'proxy',
      clientCode: 1009,
      clientReason: 'Frame too big',
      upstreamCode: fromClient ? 1009 : 1001,
      upstreamReason: 'Frame too big',
      code: 1009,
      reason: 'Frame too big',
    })
  }

  // --- write coalescing ------------------------------------------------------------------

  /**
   * Frames relayed in the same tick (one read often holds many) leave in one write: the socket
   * is corked at the first frame and uncorked on the next tick. One syscall per batch instead
   * of one per frame is most of the cost of small messages.
   */
  private clientCorked = false
  private upstreamCorked = false

  private corkClient(): void {
    const socket = this.client!._socket as { cork?: () => void } | null | undefined
    if (!socket?.cork) return
    this.clientCorked = true
    socket.cork()
    process.nextTick(uncorkClient, this)
  }

  private corkUpstream(): void {
    const socket = this.up._socket as { cork?: () => void } | null | undefined
    if (!socket?.cork) return
    this.upstreamCorked = true
    socket.cork()
    process.nextTick(uncorkUpstream, this)
  }

  uncorkClient(): void {
    this.clientCorked = false
    ;(this.client!._socket as { uncork?: () => void } | null)?.uncork?.()
  }

  uncorkUpstream(): void {
    this.upstreamCorked = false
    ;(this.up._socket as { uncork?: () => void } | null)?.uncork?.()
  }

  // --- flow control ----------------------------------------------------------------------

  /** The client's send queue passed the high-water mark: stop reading from the upstream. */
  private clientBackpressure(): void {
    const cap = this.rt.o.maxBufferedAmount
    if (cap > 0 && this.client!.bufferedAmount > cap) return this.clientTooSlow()
    if (this.upstreamPaused || this.rt.o.whatwg) return
    this.upstreamPaused = true
    this.up.pause()
    this.watchDrain()
  }

  /** The upstream's send queue passed the high-water mark: stop reading from the client. */
  private upstreamBackpressure(): void {
    const cap = this.rt.o.maxBufferedAmount
    if (cap > 0 && this.up.bufferedAmount > cap) {
      return this.end('backpressure-limit', { source: 'proxy', clientCode: 1008, clientReason: 'Upstream too slow', upstreamCode: 1001, code: 1008, reason: 'Upstream too slow' })
    }
    if (this.clientPaused || !this.client) return
    this.clientPaused = true
    this.client.pause()
    this.watchDrain()
  }

  private clientTooSlow(): void {
    this.end('backpressure-limit', { source: 'proxy', clientCode: 1008, clientReason: 'Client too slow', upstreamCode: 1001, code: 1008, reason: 'Client too slow' })
  }

  /** Resume a paused side once the other side's queue is below the low-water mark. */
  private watchDrain(): void {
    // `drain` gives a prompt resume; the poll covers queues that drain without the event.
    if (this.upstreamPaused && !this.waitingClientDrain && this.client?._socket) {
      this.waitingClientDrain = true
      this.client._socket.once('drain', () => this.onClientDrain())
    }
    if (this.clientPaused && !this.waitingUpstreamDrain && this.up?._socket) {
      this.waitingUpstreamDrain = true
      this.up._socket.once('drain', () => this.onUpstreamDrain())
    }
    if (this.drainTimer === undefined) {
      this.drainTimer = setInterval(checkDrained, DRAIN_POLL_MS, this)
      this.drainTimer.unref?.()
    }
  }

  private onClientDrain(): void {
    this.waitingClientDrain = false
    this.checkDrained()
  }

  private onUpstreamDrain(): void {
    this.waitingUpstreamDrain = false
    this.checkDrained()
  }

  checkDrained(): void {
    if (this.closed) return
    const low = this.rt.o.lowWaterMark
    if (this.upstreamPaused && this.client!.bufferedAmount <= low) {
      this.upstreamPaused = false
      this.up.resume()
    }
    if (this.clientPaused && this.up.bufferedAmount <= low) {
      this.clientPaused = false
      this.client!.resume()
    }
    if (!this.upstreamPaused && !this.clientPaused) {
      clearInterval(this.drainTimer)
      this.drainTimer = undefined
    }
    else {
      this.watchDrain()
    }
  }

  // --- events ----------------------------------------------------------------------------

  private readonly onUpstreamOpen = (): void => {
    if (this.closed) return
    clearTimeout(this.connectTimer)
    this.connectTimer = undefined
    this.upstreamOpen = true
    const queue = this.queue!
    this.queue = null
    this.queuedCost = 0
    for (let i = 0; i < queue.length && !this.closed; i += 2) this.toUpstream(queue[i], queue[i + 1] as boolean)
    if (this.closed) return
    if (this.settleFirst) {
      // Hold the upstream until the client is accepted; frames already read wait in `backlog`.
      if (!this.rt.o.whatwg) {
        this.upstreamPaused = true
        this.up.pause()
      }
      const settle = this.settleFirst
      this.settleFirst = undefined
      settle(undefined)
    }
    else {
      this.startPassthrough()
    }
    const onOpen = this.rt.o.onUpstreamOpen
    if (onOpen) {
      try { onOpen(this.pp, { url: this.url! }) }
      catch (error) { console.error('[nitro-ws-proxy] onUpstreamOpen callback failed:', error) }
    }
  }

  private readonly onUpstreamClose = (code: number, reason: string): void => {
    this.end('upstream', {
      source: 'upstream',
      clientCode: toClientCloseCode(code),
      clientReason: reason,
      code,
      reason,
      status: 502,
    })
  }

  private readonly onUpstreamError = (error: unknown): void => {
    this.fail('upstream-error', error)
  }

  private onUnexpectedResponse(status: number): void {
    this.upstreamStatus = PASSED_THROUGH_STATUSES.has(status) ? status : 502
  }

  onConnectTimeout(): void {
    this.end('connect-timeout', {
      source: 'proxy',
      clientCode: 1011,
      clientReason: 'Upstream connect timeout',
      code: 1011,
      reason: 'Upstream connect timeout',
      terminateUpstream: true,
      status: 504,
    })
  }

  checkIdle(): void {
    if (this.closed) return
    const idle = this.rt.o.clientIdleTimeout
    const remaining = idle - (Date.now() - this.lastClientActivity)
    if (remaining > 0) {
      this.idleTimer = setTimeout(checkIdle, remaining, this)
      return
    }
    this.end('client-idle', { source: 'proxy', clientCode: 1001, clientReason: 'Client idle timeout', upstreamCode: 1001, upstreamReason: 'Client idle timeout', code: 1001, reason: 'Client idle timeout' })
  }

  /** The client closed (crossws `close` hook). */
  clientClosed(code: number | undefined, reason: string | undefined): void {
    this.end('client', {
      source: 'client',
      upstreamCode: toUpstreamCloseCode(code, this.rt.o.whatwg),
      upstreamReason: reason,
      code,
      reason,
    })
  }

  /** The client socket failed (crossws `error` hook). */
  clientFailed(error: unknown): void {
    this.end('client', { source: 'client', upstreamCode: this.rt.o.whatwg ? 1000 : 1011, upstreamReason: 'Client error', error })
  }

  // --- heartbeat -------------------------------------------------------------------------

  private readonly onClientPong = (): void => {
    this.clientSeen = true
  }

  private readonly onUpstreamPong = (): void => {
    this.upstreamSeen = true
  }

  /** Ping each leg that can be pinged and is being read (a paused leg's pong would not be seen). */
  ping(): void {
    if (this.closed) return
    if (this.client && !this.clientPaused && this.client.readyState === OPEN) {
      this.clientPinged = true
      this.clientSeen = false
      try { this.client.ping() }
      catch {}
    }
    if (this.upstreamOpen && !this.rt.o.whatwg && !this.upstreamPaused && this.up.readyState === OPEN) {
      this.upstreamPinged = true
      this.upstreamSeen = false
      try { this.up.ping() }
      catch {}
    }
  }

  /** Close the pair if a pinged leg sent nothing back. */
  checkAlive(): void {
    if (this.closed) return
    if (this.upstreamPinged && !this.upstreamSeen && !this.upstreamPaused) {
      this.end('upstream-heartbeat', { source: 'proxy', clientCode: 1011, clientReason: 'Upstream heartbeat timeout', terminateUpstream: true, code: 1011, reason: 'Upstream heartbeat timeout' })
      return
    }
    if (this.clientPinged && !this.clientSeen && !this.clientPaused) {
      this.end('client-heartbeat', { source: 'proxy', terminateClient: true, upstreamCode: 1001, upstreamReason: 'Client heartbeat timeout', code: 1001, reason: 'Client heartbeat timeout' })
      return
    }
    this.clientPinged = false
    this.upstreamPinged = false
  }

  // --- teardown --------------------------------------------------------------------------

  /** End the connection once: close what is still open, count it, report it. */
  end(cause: WebSocketProxyCloseCause, ending: Ending): void {
    if (this.closed) return
    this.closed = true
    clearTimeout(this.connectTimer)
    clearTimeout(this.idleTimer)
    clearTimeout(this.adoptTimer)
    clearInterval(this.drainTimer)
    this.queue = null
    this.backlog = null
    const rt = this.rt
    rt.connections.delete(this)
    rt.counters.open--
    rt.counters.closed[cause]++

    if (ending.source !== 'client' && this.peer) this.closeClient(ending)
    if (this.up) this.closeUpstream(ending)
    this.unpause()

    if (this.settleFirst) {
      const settle = this.settleFirst
      this.settleFirst = undefined
      settle(ending.status ?? 502)
    }

    const url = this.url
    const onClose = rt.o.onUpstreamClose
    if (url && onClose) {
      try {
        onClose(this.pp, { url, source: ending.source, cause, code: ending.code, reason: ending.reason, error: ending.error })
      }
      catch (error) {
        console.error('[nitro-ws-proxy] onUpstreamClose callback failed:', error)
      }
    }
  }

  private closeClient(ending: Ending): void {
    try {
      if (ending.terminateClient) {
        if (this.client) this.client.terminate()
        else this.peer!.terminate()
      }
      else {
        this.peer!.close(ending.clientCode ?? 1000, truncateReason(ending.clientReason))
      }
    }
    catch {}
  }

  private closeUpstream(ending: Ending): void {
    const up = this.up
    try {
      if (up.readyState === CONNECTING || (ending.terminateUpstream && !this.rt.o.whatwg)) {
        // A handshake in progress is aborted; `ws` reports it as an error we ignore (closed).
        if (this.rt.o.whatwg) up.close()
        else up.terminate()
      }
      else if (up.readyState === OPEN) {
        // WHATWG constructors throw on codes other than 1000 and 3000-4999.
        const code = this.rt.o.whatwg ? toUpstreamCloseCode(ending.upstreamCode, true) : ending.upstreamCode
        if (code === undefined) up.close()
        else up.close(code, truncateReason(ending.upstreamReason))
      }
    }
    catch {
      // Never leave an upstream open because a close argument was refused.
      try { this.rt.o.whatwg ? up.close() : up.terminate() }
      catch {}
    }
  }

  /** Paused sockets must read again, or their close handshakes could never complete. */
  private unpause(): void {
    try {
      if (this.clientPaused) this.client!.resume()
      if (this.upstreamPaused) this.up.resume()
    }
    catch {}
    this.clientPaused = false
    this.upstreamPaused = false
  }
}

function writeSlices(socket: unknown, slices: Buffer[]): void {
  const out = socket as { write: (chunk: Buffer) => boolean } | null | undefined
  if (!out) return
  for (let i = 0; i < slices.length; i++) out.write(slices[i]!)
}

// Timer and tick callbacks take the connection as an argument: no closure per connection.
function retryPassthrough(c: ProxyConnection): void { c.startPassthrough() }
function checkIdle(c: ProxyConnection): void { c.checkIdle() }
function onConnectTimeout(c: ProxyConnection): void { c.onConnectTimeout() }
function checkDrained(c: ProxyConnection): void { c.checkDrained() }
function uncorkClient(c: ProxyConnection): void { c.uncorkClient() }
function uncorkUpstream(c: ProxyConnection): void { c.uncorkUpstream() }

/** Upstream refusals an upstream-first handshake passes to the client as they are. */
const PASSED_THROUGH_STATUSES = new Set([400, 401, 403, 404, 410, 429])
