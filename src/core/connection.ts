import type { Peer } from 'crossws'
import type { EndingName, LegEnding } from './endings'
import type { FrameTarget } from './frame-splitter'
import type { ResolvedProxyOptions } from './options'
import type { ConnectionLimits, Reservation } from './limits'
import type { UpstreamPool, UpstreamState } from './pool'
import type { ProxyCounters } from './stats'
import type { ProxyPeer, WebSocketProxyConnectionInfo, WebSocketProxyLegClose } from './types'
import type { UpstreamHandlers } from './upstream'
import { toClientCloseCode, toUpstreamCloseCode } from './close-codes'
import { ENDINGS } from './endings'
import { canRelayFrames, getPeerEventSocket, getPeerSocket, type NodeWebSocket, takeOverReading, type UpgradeSocket } from './fence'
import { FrameSplitter } from './frame-splitter'
import { Leg, READ_FRAMES, READ_HOOK, READ_MESSAGES } from './leg'
import { RateBuckets } from './limits'
import { toTargetUrls } from './options'
import { textBufferCost } from './text-size'
import { buildConstructorOptions, dialUpstream, kConnection } from './upstream'

/** State shared by every connection of one proxy instance. */
export interface ProxyRuntime {
  readonly o: ResolvedProxyOptions
  readonly counters: ProxyCounters
  readonly connections: Set<ProxyConnection>
  readonly pool: UpstreamPool
  /** Connection caps (when set): this connection's slot is given back in `end()`. */
  readonly limits: ConnectionLimits | undefined
  /** The pool states of a static target's URLs (same order), registered once at setup. */
  readonly staticStates: UpstreamState[] | undefined
  /** Called when a connection starts, so the heartbeat sweep can run while any exist. */
  onConnectionStart: () => void
}

// --- phases ------------------------------------------------------------------------------------

/** The client is accepted; the upstream is being resolved and dialled; client frames queue. */
export const CONNECTING = 1
/** `upstreamFirst`: dialling during `upgrade`, before the client is accepted. */
export const DIALLING_FIRST = 2
/** `upstreamFirst`: the upstream is open (and paused); the client's handshake is completing. */
export const AWAITING_CLIENT = 4
/** Both legs open: frames are relayed. */
export const OPEN = 8
/** Ended: both legs closed or closing, counted and reported. */
export const CLOSED = 16

/**
 * The transition table, as the events each phase accepts. An event that arrives in a phase not
 * listed for it (a timer after the end, an upstream frame after a failure) is ignored, here.
 */
const ACCEPTS = {
  clientFrame: CONNECTING | OPEN,
  upstreamOpen: CONNECTING | DIALLING_FIRST,
  upstreamFrame: AWAITING_CLIENT | OPEN,
  clientAccepted: AWAITING_CLIENT,
  heartbeat: OPEN,
  /** Any ending: from every phase but `CLOSED`. */
  end: CONNECTING | DIALLING_FIRST | AWAITING_CLIENT | OPEN,
} as const

/** How often a paused leg re-checks the other leg's queue when no `drain` event comes. */
const DRAIN_POLL_MS = 25

/** Received or chosen code/reason/error that completes a row of the endings table. */
interface EndingDetail {
  code?: number
  reason?: string
  error?: unknown
}

function byteSize(data: any): number {
  return typeof data === 'string' ? data.length : data.byteLength
}

/**
 * One client and its upstream: two {@link Leg}s and the phase they are in. Every event enters
 * through {@link ProxyConnection.accepts}; `end()` is the only way out, so each connection is
 * torn down, counted and reported exactly once.
 */
export class ProxyConnection implements FrameTarget, UpstreamHandlers {
  phase: number
  client: Leg | undefined
  upstream: Leg | undefined
  url: URL | undefined

  /** Client → upstream messages waiting for the upstream to open: data, isBinary, data, ... */
  private queue: unknown[] | null = []
  private queuedCost = 0
  /** Upstream → client messages read before the client was accepted (upstream-first). */
  private backlog: unknown[] | null = null

  private connectTimer: ReturnType<typeof setTimeout> | undefined
  private idleTimer: ReturnType<typeof setTimeout> | undefined
  private adoptTimer: ReturnType<typeof setTimeout> | undefined
  private drainTimer: ReturnType<typeof setInterval> | undefined
  private lastClientActivity = 0
  private upstreamStatus: number | undefined
  private settleFirst: ((status: number | undefined) => void) | undefined
  private passthroughTries = 0
  private lifetimeTimer: ReturnType<typeof setTimeout> | undefined
  /** The pool: the URLs this connection may dial, their states, and which were tried (bits). */
  private candidates: URL[] | undefined
  private states: UpstreamState[] | undefined
  private tried = 0
  /** The upstream this connection is assigned to (counted in its `open`). */
  private assigned: UpstreamState | undefined
  /** The assigned upstream is out of service and this connection holds its one trial dial. */
  private onTrial = false
  /** The socket of the current dial: events of a socket given up on are ignored. */
  private upstreamSocket: unknown
  /** Upstream-first: the client's socket, watched until the client is adopted. */
  private watchedSocket: UpgradeSocket | undefined
  /** Unique in this process: `<process prefix>-<sequence>` (base 36). */
  readonly id: string
  readonly startedAt: number
  /** When the last dial started and when the upstream opened (epoch ms; 0: not yet). */
  dialledAt = 0
  upstreamOpenedAt = 0
  /** Relayed by this connection: client → upstream (up) and upstream → client (down). */
  bytesUp = 0
  bytesDown = 0
  messagesUp = 0
  messagesDown = 0
  /** The slot this connection holds under the proxy's connection caps. */
  reservation: Reservation | undefined
  /** The client's send rates (`limits.messagesPerSecond` / `bytesPerSecond`), when limited. */
  private rates: RateBuckets | undefined
  /** The client's close code comes from its socket's `close` event, not the crossws hook. */
  readsClientCloseEvent = false

  constructor(readonly rt: ProxyRuntime, readonly pp: ProxyPeer, readonly offer: string[] | undefined) {
    this.phase = CONNECTING
    this.id = `${ID_PREFIX}-${(++sequence).toString(36)}`
    this.startedAt = Date.now()
    const rates = rt.o.rates
    if (rates) this.rates = new RateBuckets(rates.messages, rates.bytes)
    rt.connections.add(this)
    rt.counters.open++
    rt.counters.opened++
    rt.onConnectionStart()
  }

  /** Whether the current phase takes `event` (see {@link ACCEPTS}). */
  accepts(event: keyof typeof ACCEPTS): boolean {
    return (this.phase & ACCEPTS[event]) !== 0
  }

  /** True when client messages come through the crossws `message` hook (non-Node adapters). */
  get readsClientHook(): boolean {
    return this.client?.reading === READ_HOOK
  }

  /** The subprotocol the upstream answered (upstream-first accepts the client with it). */
  get upstreamProtocol(): string {
    return (this.upstream?.ws ?? this.upstream?.plain as { protocol?: string } | undefined)?.protocol ?? ''
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
    this.phase = DIALLING_FIRST
    this.backlog = []
    return new Promise((resolve) => {
      this.settleFirst = resolve
      this.connect()
    })
  }

  /**
   * Upstream-first mode: end the dial (or the dialled upstream) as soon as the client's socket
   * closes before its handshake completes, instead of at the adoption timeout.
   */
  watchClientSocket(socket: UpgradeSocket): void {
    if (socket.destroyed) return this.end('client-handshake-failed')
    this.watchedSocket = socket
    ;(socket as UpgradeSocket & { [kConnection]?: ProxyConnection })[kConnection] = this
    socket.once!('close', onClientSocketClose)
  }

  clientGone(): void {
    this.watchedSocket = undefined
    if (this.phase & (DIALLING_FIRST | AWAITING_CLIENT)) this.end('client-handshake-failed')
  }

  private unwatchClientSocket(): void {
    this.watchedSocket?.off!('close', onClientSocketClose)
    this.watchedSocket = undefined
  }

  /** Upstream-first mode: the client handshake completed; relay what the upstream already sent. */
  adopt(peer: Peer): void {
    if (!this.accepts('clientAccepted')) return
    clearTimeout(this.adoptTimer)
    this.unwatchClientSocket()
    this.attachClient(peer)
    this.phase = OPEN
    const backlog = this.backlog!
    this.backlog = null
    for (let i = 0; i < backlog.length && this.phase === OPEN; i += 2) this.relay(this.upstream!, backlog[i], backlog[i + 1] as boolean)
    if (this.phase !== OPEN) return
    if (this.upstream!.paused) this.upstream!.resume()
    this.startPassthrough()
  }

  /** Upstream-first mode: give up on a client whose handshake never completes. */
  expectAdoption(ms: number): void {
    this.adoptTimer = setTimeout(onAdoptTimeout, ms, this)
    this.adoptTimer.unref?.()
  }

  private attachClient(peer: Peer): void {
    const ws = getPeerSocket(peer)
    if (ws) {
      this.client = new Leg(ws, true, true, READ_MESSAGES)
      ;(ws as NodeWebSocket & { [kConnection]?: ProxyConnection })[kConnection] = this
      ws.on('message', onClientMessage)
      ws.on('pong', onClientPong)
    }
    else {
      this.client = new Leg(peer as unknown as { send: (data: any) => unknown, close: () => unknown }, false, true, READ_HOOK)
      const socket = getPeerEventSocket(peer)
      if (socket && socket.readyState <= 1) {
        this.readsClientCloseEvent = true
        socket.addEventListener('close', (event) => {
          this.clientClosed(event.code, event.reason)
        })
      }
    }
    const idle = this.rt.o.clientIdleTimeout
    if (idle > 0) {
      this.lastClientActivity = Date.now()
      this.idleTimer = setTimeout(checkIdle, idle, this)
    }
    const lifetime = this.rt.o.maxLifetime
    if (lifetime > 0) {
      // ±10 %: connections opened together (after a deploy) do not all end together.
      this.lifetimeTimer = setTimeout(onLifetime, lifetime * (0.9 + Math.random() * 0.2), this)
      this.lifetimeTimer.unref?.()
    }
  }

  private connect(): void {
    const o = this.rt.o
    this.armConnectTimer()
    if (o.staticTargets) {
      this.candidates = o.staticTargets
      this.states = this.rt.staticStates
      return this.dialNext()
    }
    let target: unknown
    try {
      target = (o.target as (peer: ProxyPeer) => unknown)(this.pp)
    }
    catch (error) {
      return this.end('setup-failed', { error })
    }
    if (target && typeof (target as Promise<unknown>).then === 'function') {
      (target as Promise<unknown>).then(resolved => this.useTargets(resolved), error => this.end('setup-failed', { error }))
    }
    else {
      this.useTargets(target)
    }
  }

  private armConnectTimer(): void {
    const ms = this.rt.o.connectTimeout
    clearTimeout(this.connectTimer)
    if (ms > 0) this.connectTimer = setTimeout(onConnectTimeout, ms, this)
  }

  /** What a resolver returned: one URL or a pool of them. */
  private useTargets(target: unknown): void {
    if (!this.accepts('end')) return
    try {
      this.candidates = toTargetUrls(target, 'target (returned by the resolver)')
    }
    catch (error) {
      return this.end('setup-failed', { error })
    }
    const pool = this.rt.pool
    this.states = this.candidates.map(url => pool.register(url))
    this.dialNext()
  }

  /** Dial the next upstream the pool picks among those not tried yet; none left ends the connection. */
  private dialNext(failure?: { name: EndingName, detail: EndingDetail }): void {
    const index = this.rt.pool.pick(this.candidates!, this.states!, this.tried, this.pp)
    if (index === -1) {
      return failure
        ? this.end(failure.name, failure.detail)
        : this.end('upstream-error', { error: new Error('No upstream available: every upstream is out of service') })
    }
    this.tried |= 1 << index
    const state = this.states![index]!
    state.open++
    this.assigned = state
    this.onTrial = state.trial
    this.dial(this.candidates![index]!)
  }

  private dial(url: URL): void {
    if (!this.accepts('end')) return
    const o = this.rt.o
    this.url = url
    this.dialledAt = Date.now()
    try {
      o.onUpstreamConnect?.(this.pp, { url: this.url })
      // The callback may have closed the client itself: then the upstream is not dialled.
      if (!this.accepts('end') || (this.client && this.client.ws && this.client.ws.readyState > 1)) {
        return this.end('client-closed')
      }
      const protocols = this.offer?.length ? this.offer : undefined
      this.upstreamStatus = undefined
      const socket = dialUpstream(o, this.url, protocols, buildConstructorOptions(o, this.pp), this)
      this.upstreamSocket = socket
      this.upstream = new Leg(socket, !o.whatwg, false, READ_MESSAGES)
    }
    catch (error) {
      this.end('setup-failed', { error })
    }
  }

  // --- the relay (hot path) --------------------------------------------------------------

  /** A client message: relay it, or queue it while the upstream is connecting. */
  fromClient(data: any, isBinary: boolean): void {
    const phase = this.phase
    if (this.rates !== undefined && phase & (CONNECTING | OPEN) && this.overRate(1, byteSize(data))) return
    if (phase === OPEN) {
      this.client!.seen = true
      if (this.idleTimer !== undefined) this.lastClientActivity = Date.now()
      this.relay(this.client!, data, isBinary)
      return
    }
    if (phase !== CONNECTING) return
    if (this.idleTimer !== undefined) this.lastClientActivity = Date.now()
    const limit = this.rt.o.maxBufferSize
    const cost = isBinary ? byteSize(data) : textBufferCost(data)
    if (limit > 0 && this.queuedCost + cost > limit) return this.end('buffer-limit')
    this.queue!.push(data, isBinary)
    this.queuedCost += cost
  }

  /** An upstream message: relay it, or keep it until the client is accepted (upstream-first). */
  upstreamMessage(data: any, isBinary: boolean): void {
    const phase = this.phase
    if (phase === OPEN) {
      this.upstream!.seen = true
      this.relay(this.upstream!, data, isBinary)
    }
    else if (phase === AWAITING_CLIENT) {
      this.backlog!.push(data, isBinary)
    }
  }

  /** Send one message from `from` to the other leg with its frame type. */
  private relay(from: Leg, data: any, isBinary: boolean): void {
    const size = byteSize(data)
    const to = from.isClient ? this.upstream! : this.client!
    // Counted once, here: the proxy's totals add these up (stats.ts), live and at the end.
    if (from.isClient) {
      this.messagesUp++
      this.bytesUp += size
    }
    else {
      this.messagesDown++
      this.bytesDown += size
    }
    to.send(data, isBinary)
    if (to.queued > this.rt.o.highWaterMark) this.backpressure(from, to, size)
  }

  // --- frame passthrough -----------------------------------------------------------------

  /**
   * Once both legs are open raw `ws` sockets without extensions, relay data frames byte for
   * byte (see frame-splitter.ts). A leg whose receiver is mid-frame is retried on a later turn.
   */
  startPassthrough(): void {
    const client = this.client
    const upstream = this.upstream
    if (this.phase !== OPEN || !this.rt.o.passthrough || !client?.ws || !upstream?.ws) return
    // Both legs or neither: a leg with an extension (compression) keeps both on messages.
    for (const leg of [client, upstream]) {
      if (leg.reading !== READ_FRAMES && !canRelayFrames(leg.ws!)) return
    }
    if (!client.raw || !upstream.raw) return
    for (const from of [client, upstream]) {
      if (from.reading === READ_FRAMES) continue
      const feed = takeOverReading(from.ws!, onSocketData)
      if (!feed) continue
      from.feedControl = feed
      from.splitter = new FrameSplitter(this, from.isClient)
      ;(from.raw as unknown as { [kLeg]: Leg })[kLeg] = from
      from.reading = READ_FRAMES
    }
    if ((client.reading !== READ_FRAMES || upstream.reading !== READ_FRAMES) && ++this.passthroughTries < 100) {
      setImmediate(retryPassthrough, this)
    }
  }

  /** Bytes of a data frame from one leg (passthrough): write them as they are to the other. */
  frameData(fromClient: boolean, slices: Buffer[], payloadBytes: number, first: boolean, last: boolean, fin: boolean): void {
    if (this.phase !== OPEN) return
    let from: Leg, to: Leg
    if (fromClient) {
      if (this.rates !== undefined && this.overRate(last && fin ? 1 : 0, payloadBytes)) return
      from = this.client!
      to = this.upstream!
      if (this.idleTimer !== undefined) this.lastClientActivity = Date.now()
      this.bytesUp += payloadBytes
      if (last && fin) this.messagesUp++
    }
    else {
      from = this.upstream!
      to = this.client!
      this.bytesDown += payloadBytes
      if (last && fin) this.messagesDown++
    }
    from.seen = true
    if (first && !last) to.beginFrame()
    to.write(slices)
    if (last && !first) to.endFrame()
    if (to.queued > this.rt.o.highWaterMark) this.backpressure(from, to, 0)
  }

  frameControl(fromClient: boolean, frame: Buffer): void {
    const leg = fromClient ? this.client : this.upstream
    leg?.feedControl?.(frame)
  }

  frameInvalid(fromClient: boolean, code: 1002 | 1009, reason: string): void {
    if (code === 1009) return this.end(fromClient ? 'client-message-too-big' : 'upstream-message-too-big')
    if (!fromClient) return this.end('upstream-protocol-error', { error: new Error(reason) })
    this.end('client-protocol-error', { code: 1002, reason: 'Protocol error', error: new Error(reason) })
    // Nothing reads the client any more (its stream is broken): end the TCP connection after
    // the close frame instead of waiting for a close frame that could not be parsed.
    this.client!.raw?.end()
  }

  /** Spend the client's rate tokens; over a rate, end the connection (1008 naming the rate). */
  private overRate(messages: number, bytes: number): boolean {
    const over = this.rates!.take(messages, bytes)
    if (over === undefined) return false
    const limited = this.rt.counters.limited
    if (over === 'messages') limited.messageRate++
    else limited.byteRate++
    this.end('rate-limited', { code: 1008, reason: over === 'messages' ? 'Message rate limit exceeded' : 'Byte rate limit exceeded' })
    return true
  }

  // --- flow control ----------------------------------------------------------------------

  /**
   * The queue toward `to` passed the high-water mark: stop reading `from`. Only a sender that
   * cannot be paused (a plain socket) lets the queue grow: up to `maxBufferedAmount` before the
   * message just queued (`size` bytes), so one large message still passes; a queue that stays
   * over it is a consumer that does not keep up.
   */
  private backpressure(from: Leg, to: Leg, size: number): void {
    if (from.ws) {
      if (!from.paused) {
        from.pause()
        this.watchDrain()
      }
      return
    }
    const cap = this.rt.o.maxBufferedAmount
    if (cap > 0 && to.queued - size > cap) this.end(to.isClient ? 'client-too-slow' : 'upstream-too-slow')
  }

  /** Resume a paused leg once the other leg's queue is below the low-water mark. */
  private watchDrain(): void {
    // `drain` gives a prompt resume; the poll covers queues that drain without the event.
    for (const leg of [this.client!, this.upstream!]) {
      const other = leg.isClient ? this.upstream! : this.client!
      if (leg.paused && !other.waitingDrain && other.raw) {
        other.waitingDrain = true
        other.raw.once('drain', () => {
          other.waitingDrain = false
          this.checkDrained()
        })
      }
    }
    if (this.drainTimer === undefined) {
      this.drainTimer = setInterval(checkDrained, DRAIN_POLL_MS, this)
      this.drainTimer.unref?.()
    }
  }

  checkDrained(): void {
    if (this.phase !== OPEN) return
    const low = this.rt.o.lowWaterMark
    const client = this.client!
    const upstream = this.upstream!
    if (upstream.paused && client.queued <= low) upstream.resume()
    if (client.paused && upstream.queued <= low) client.resume()
    if (!upstream.paused && !client.paused) {
      clearInterval(this.drainTimer)
      this.drainTimer = undefined
    }
    else {
      this.watchDrain()
    }
  }

  // --- events ----------------------------------------------------------------------------

  upstreamOpen(): void {
    if (!this.accepts('upstreamOpen')) return
    clearTimeout(this.connectTimer)
    this.connectTimer = undefined
    if (this.assigned) this.rt.pool.succeeded(this.assigned)
    this.onTrial = false
    this.upstreamOpenedAt = Date.now()
    const first = this.phase === DIALLING_FIRST
    this.phase = first ? AWAITING_CLIENT : OPEN
    const upstream = this.upstream!
    upstream.bindSocket()
    const queue = this.queue!
    this.queue = null
    this.queuedCost = 0
    for (let i = 0; i < queue.length && this.phase === OPEN; i += 2) this.relay(this.client!, queue[i], queue[i + 1] as boolean)
    if (!this.accepts('end')) return
    if (first) {
      // Hold the upstream until the client is accepted; messages already read wait in `backlog`.
      if (upstream.ws) upstream.pause()
      const settle = this.settleFirst!
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
    const onConnectionOpen = this.rt.o.onConnectionOpen
    if (onConnectionOpen) {
      try { onConnectionOpen(this.info()) }
      catch (error) { console.error('[nitro-ws-proxy] onConnectionOpen callback failed:', error) }
    }
  }

  upstreamClose(code: number, reason: string, socket: unknown): void {
    if (socket !== this.upstreamSocket) return
    if (this.phase & (CONNECTING | DIALLING_FIRST)) return this.dialFailed('upstream-error', { code, reason })
    this.end('upstream-closed', { code, reason })
  }

  upstreamError(error: unknown, socket: unknown): void {
    if (socket !== this.upstreamSocket) return
    if (this.phase & (CONNECTING | DIALLING_FIRST)) return this.dialFailed('upstream-error', { error })
    this.end('upstream-error', { error })
  }

  upstreamAnswered(status: number, socket: unknown): void {
    if (socket !== this.upstreamSocket) return
    this.upstreamStatus = status
  }

  /**
   * The dial failed before the upstream opened. Refused, reset, a 5xx answer or a timeout take
   * the upstream's passive health down a notch and fail over to the next upstream, the client's
   * frames still queued; any other answer (4xx: the upstream is alive and said no) ends here.
   */
  dialFailed(name: 'upstream-error' | 'connect-timeout', detail: EndingDetail): void {
    if (!this.accepts('end')) return
    // Still resolving the target: nothing to fail over to.
    if (this.candidates === undefined) return this.end(name, detail)
    const status = this.upstreamStatus
    const assigned = this.assigned
    if (status !== undefined && status < 500) {
      // It answered: alive, whatever it said.
      if (assigned) this.rt.pool.answered(assigned)
      this.onTrial = false
      return this.end(name, detail)
    }
    if (assigned) {
      // A WHATWG upstream shows no status: a refusal (4xx) cannot be told from a dead upstream.
      // Such failures still fail over, but only timeouts count against the upstream's health,
      // so that clients refused for their own reasons cannot take the pool out of service.
      this.rt.pool.failed(assigned, name === 'connect-timeout' || !this.rt.o.whatwg)
      this.onTrial = false
      assigned.open--
      this.assigned = undefined
    }
    const failed = this.upstream
    this.upstream = undefined
    this.upstreamSocket = undefined
    failed?.terminate()
    if (this.candidates && this.candidates.length > 1) this.armConnectTimer()
    this.upstreamStatus = undefined
    this.dialNext({ name, detail })
  }

  clientPong(): void {
    this.client!.seen = true
  }

  upstreamPong(): void {
    if (this.upstream) this.upstream.seen = true
  }

  checkIdle(): void {
    if (!this.accepts('end')) return
    const remaining = this.rt.o.clientIdleTimeout - (Date.now() - this.lastClientActivity)
    if (remaining > 0) this.idleTimer = setTimeout(checkIdle, remaining, this)
    else this.end('client-idle')
  }

  /** The client closed (crossws `close` hook). */
  clientClosed(code: number | undefined, reason: string | undefined): void {
    this.end('client-closed', { code, reason })
  }

  /** The client socket failed (crossws `error` hook). */
  clientFailed(error: unknown): void {
    this.end('client-error', { error })
  }

  // --- heartbeat -------------------------------------------------------------------------

  /** Ping each leg that can be pinged and is being read (a paused leg's answer would not be read). */
  ping(): void {
    if (!this.accepts('heartbeat')) return
    for (const leg of [this.client!, this.upstream!]) {
      if (leg.ws && !leg.paused && leg.open) leg.ping()
    }
  }

  /** Close the pair if a pinged leg showed no life (no byte, no pong) since its ping. */
  checkAlive(): void {
    if (!this.accepts('heartbeat')) return
    const upstream = this.upstream!
    const client = this.client!
    if (upstream.pinged && !upstream.paused && !upstream.alive) return this.end('upstream-heartbeat')
    if (client.pinged && !client.paused && !client.alive) return this.end('client-heartbeat')
    client.pinged = false
    upstream.pinged = false
  }

  // --- teardown --------------------------------------------------------------------------

  /** `closeAll()`: end with `code`/`reason` for the client; returns the sockets to wait for. */
  shutdown(code: number, reason: string): Array<{ readyState: number, terminate?: () => void, close: () => void }> {
    const sockets = [this.client?.ws, this.upstream?.ws ?? this.upstream?.plain].filter(Boolean) as Array<{ readyState: number, terminate?: () => void, close: () => void }>
    this.end('shutdown', { code, reason })
    return sockets
  }

  /** End the connection once: tell each leg what the endings table says, count it, report it. */
  end(name: EndingName, detail: EndingDetail = {}): void {
    if (!this.accepts('end')) return
    this.phase = CLOSED
    clearTimeout(this.connectTimer)
    clearTimeout(this.idleTimer)
    clearTimeout(this.adoptTimer)
    clearTimeout(this.lifetimeTimer)
    if (this.reservation) {
      this.rt.limits!.release(this.reservation)
      this.reservation = undefined
    }
    if (this.assigned) {
      if (this.onTrial) this.rt.pool.abandonTrial(this.assigned)
      this.onTrial = false
      this.assigned.open--
      this.assigned = undefined
    }
    clearInterval(this.drainTimer)
    this.unwatchClientSocket()
    this.queue = null
    this.backlog = null
    const rt = this.rt
    const spec = ENDINGS[name]
    rt.connections.delete(this)
    const c = rt.counters
    c.open--
    c.closed[spec.cause]++
    // Ended connections' relayed counts move into the proxy's totals (live ones are summed in stats()).
    c.messagesToUpstream += this.messagesUp
    c.messagesToClient += this.messagesDown
    c.bytesToUpstream += this.bytesUp
    c.bytesToClient += this.bytesDown

    const client = this.client
    const upstream = this.upstream
    // What each leg saw: the code it closed with itself, or the one the proxy sent it.
    const clientSaw = spec.client === null ? received(detail) : client ? this.closeLeg(client, spec.client, detail) : NOT_OPEN
    const upstreamSaw = spec.upstream === null ? received(detail) : upstream ? this.closeLeg(upstream, spec.upstream, detail) : NOT_OPEN
    // Paused sockets must read again, or their close handshakes could never complete.
    try {
      if (client?.paused) client.resume()
      if (upstream?.paused) upstream.resume()
    }
    catch {}

    if (this.settleFirst) {
      const settle = this.settleFirst
      this.settleFirst = undefined
      // A non-101 answer (set just before the error it causes) wins over the table's status.
      const status = this.upstreamStatus
      settle(status === undefined ? spec.status : PASSED_THROUGH_STATUSES.has(status) ? status : 502)
    }

    const onConnectionClose = rt.o.onConnectionClose
    if (onConnectionClose) {
      const now = Date.now()
      try {
        onConnectionClose({
          ...this.info(now),
          endedAt: now,
          source: spec.source,
          cause: spec.cause,
          client: clientSaw,
          upstream: upstreamSaw,
          error: detail.error,
        })
      }
      catch (error) {
        console.error('[nitro-ws-proxy] onConnectionClose callback failed:', error)
      }
    }

    const url = this.url
    const onClose = rt.o.onUpstreamClose
    if (url && onClose) {
      const reported = 'reported' in spec ? spec.reported : undefined
      try {
        onClose(this.pp, {
          url,
          source: spec.source,
          cause: spec.cause,
          code: reported ? reported[0] : detail.code,
          reason: reported ? reported[1] : detail.reason,
          error: detail.error,
        })
      }
      catch (error) {
        console.error('[nitro-ws-proxy] onUpstreamClose callback failed:', error)
      }
    }
  }

  /** A snapshot of this connection (`connections()`, the open and close records). */
  info(now = Date.now()): WebSocketProxyConnectionInfo {
    const url = this.url
    return {
      id: this.id,
      peer: this.pp,
      remoteAddress: this.pp.remoteAddress,
      url,
      startedAt: this.startedAt,
      upstreamOpenedAt: this.upstreamOpenedAt || undefined,
      handshakeMs: this.upstreamOpenedAt ? this.upstreamOpenedAt - this.dialledAt : undefined,
      durationMs: now - this.startedAt,
      bytes: { toUpstream: this.bytesUp, toClient: this.bytesDown },
      messages: { toUpstream: this.messagesUp, toClient: this.messagesDown },
    }
  }

  /** Close one leg as the endings table says; returns the code and reason it was sent. */
  private closeLeg(leg: Leg, ending: LegEnding, detail: EndingDetail): WebSocketProxyLegClose {
    if (ending === null) return received(detail)
    if (ending === 'terminate') {
      leg.terminate()
      return TERMINATED
    }
    const whatwg = this.rt.o.whatwg
    let code: number | undefined
    let reason: string | undefined
    if (ending === 'mirror') {
      // The other side's code, made valid for this one.
      code = leg.isClient ? toClientCloseCode(detail.code) : toUpstreamCloseCode(detail.code, whatwg)
      reason = detail.reason
    }
    else {
      code = ending[0]
      reason = ending[1]
    }
    // WHATWG constructors throw on codes other than 1000 and 3000-4999.
    if (!leg.isClient && whatwg && code !== undefined) code = toUpstreamCloseCode(code, true)
    leg.close(code, reason)
    return { code: code ?? 1005, reason: reason ?? '' }
  }
}

const kLeg = Symbol('nitro-ws-proxy.leg')

/** Connection ids: a random prefix per process, so that logs of several instances do not clash. */
const ID_PREFIX = Math.random().toString(36).slice(2, 8).padEnd(6, '0')
let sequence = 0

/** A leg dropped without a close frame; a leg that never opened. */
const TERMINATED: WebSocketProxyLegClose = Object.freeze({ code: 1006, reason: '' })
const NOT_OPEN: WebSocketProxyLegClose = Object.freeze({ code: 1006, reason: '' })

function received(detail: EndingDetail): WebSocketProxyLegClose {
  return { code: detail.code ?? (detail.error ? 1006 : 1005), reason: detail.reason ?? '' }
}

/** The `data` listener of a passthrough leg's TCP socket: shared, no closure per connection. */
function onSocketData(this: { [kLeg]: Leg }, chunk: Buffer): void {
  this[kLeg].splitter!.push(chunk)
}

// Socket listeners are shared by every connection: the socket they fire on carries its connection.
type Carrier = { [kConnection]: ProxyConnection }
function onClientMessage(this: Carrier, data: any, isBinary: boolean): void { this[kConnection].fromClient(data, isBinary) }
function onClientPong(this: Carrier): void { this[kConnection].clientPong() }
function onClientSocketClose(this: Carrier): void { this[kConnection].clientGone() }

// Timer and tick callbacks take the connection as an argument: no closure per connection.
function retryPassthrough(c: ProxyConnection): void { c.startPassthrough() }
function checkIdle(c: ProxyConnection): void { c.checkIdle() }
function onConnectTimeout(c: ProxyConnection): void { c.dialFailed('connect-timeout', {}) }
function onLifetime(c: ProxyConnection): void {
  const [code, reason] = c.rt.o.lifetimeClose
  c.end('lifetime', { code, reason })
}
function onAdoptTimeout(c: ProxyConnection): void { c.end('client-handshake-failed') }
function checkDrained(c: ProxyConnection): void { c.checkDrained() }

/** Upstream refusals an upstream-first handshake passes to the client as they are. */
const PASSED_THROUGH_STATUSES = new Set([400, 401, 403, 404, 410, 429])

