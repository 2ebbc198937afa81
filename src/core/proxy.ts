import type { Peer } from 'crossws'
import type { ProxyRuntime } from './connection'
import type { ProxyPeer, WebSocketProxy, WebSocketProxyDrainOptions, WebSocketProxyOptions } from './types'
import { ProxyConnection } from './connection'
import { checkUpstream } from './health-check'
import { HeartbeatSweep } from './heartbeat'
import { ConnectionLimits, refusalText, UNCLAIMED_MS, type Reservation } from './limits'
import { getLegacyNodeRequest, getNodeRequest, getPeerNodeRequest, getUpgradeRemoteAddress, getUpgradeSocket, isBeforeHttp11, markSocketBusy, readInternalsSwitch } from './fence'
import { kHandshake, peerFromHandshake, takeHandshake, type Handshake } from './handshake'
import { resolveOptions } from './options'
import { UpstreamPool } from './pool'
import { parseProtocolOffer } from './protocols'
import { rejectUpgrade } from './reject'
import { countRefusal, createCounters, snapshotCounters } from './stats'

/** Where a connection is found from its peer: a property, not a map lookup per message. */
const kConnection = Symbol.for('nitro-ws-proxy.connection')
/** Context keys handing state from `upgrade` to `open`. */
const kPending = Symbol.for('nitro-ws-proxy.pending')
const kOffer = Symbol.for('nitro-ws-proxy.offer')
const kReservation = Symbol.for('nitro-ws-proxy.reservation')

type PeerWithConnection = Peer & { [kConnection]?: ProxyConnection }
type UpgradeResult = Response | { headers?: Record<string, string>, context?: Record<PropertyKey, unknown> } | undefined

/**
 * Create crossws hooks that relay every client to its own upstream WebSocket connection.
 *
 * Text stays text and binary stays binary in both directions (also on crossws 0.3, whose Node
 * adapter loses the flag), client frames sent before the upstream opens are buffered and
 * flushed in order, close codes and reasons are carried across, and a failing upstream closes
 * only its own client. The returned object also has `stats()` and `closeAll()`.
 *
 * **Open relay**: these hooks accept everyone. Wrap `upgrade` to authenticate (see example).
 *
 * @example
 * ```ts
 * import { createWebSocketProxy } from 'nitro-ws-proxy'
 * import { WebSocket } from 'ws' // Node 20 has no global WebSocket
 *
 * const proxy = createWebSocketProxy({ target: 'ws://127.0.0.1:4000/chat', WebSocket })
 * const hooks = {
 *   ...proxy,
 *   async upgrade(request) {
 *     if (!(await isAllowed(request))) return new Response('Unauthorized', { status: 401 })
 *     return proxy.upgrade(request)
 *   },
 * }
 * ```
 */
export function createWebSocketProxy(target: WebSocketProxyOptions['target'] | WebSocketProxyOptions): WebSocketProxy {
  const o = resolveOptions(target)
  readInternalsSwitch()
  const connections = new Set<ProxyConnection>()
  const heartbeat = new HeartbeatSweep(connections, o.heartbeatInterval, o.heartbeatTimeout)
  const pool = new UpstreamPool(o, state => checkUpstream(o, state))
  const staticStates = o.staticTargets?.map(url => pool.register(url))
  for (const url of o.upstreams) pool.register(url)
  const rt: ProxyRuntime = {
    o,
    counters: createCounters(),
    connections,
    pool,
    limits: o.limits ? new ConnectionLimits(o.limits) : undefined,
    staticStates,
    onConnectionStart: () => heartbeat.ensure(),
  }
  const limits = rt.limits

  /** Refuse an upgrade (counted by status in `stats().refused`). */
  function refuse(status: number, body?: string, headers?: Record<string, string>): Response {
    countRefusal(rt.counters, status)
    return rejectUpgrade(status, undefined, body, headers)
  }

  /**
   * Take a connection slot for this upgrade (limits), held in its context until `open` claims it;
   * an upgrade that never opens gives it back when its socket closes, or after UNCLAIMED_MS.
   */
  function reserve(request: Request): Reservation | Response | undefined {
    if (!limits) return undefined
    const context = contextOf(request)
    const address = typeof context.clientAddress === 'string' ? context.clientAddress : getUpgradeRemoteAddress(request)
    const r = limits.reserve(address, context.user)
    if (typeof r === 'string') {
      rt.counters.limited[r]++
      return refuse(429, refusalText(r), { 'retry-after': '5' })
    }
    context[kReservation] = r
    const socket = getUpgradeSocket(request)
    if (socket) {
      // A client gone before its upgrade reached here (an awaited auth check) gets nothing.
      if (socket.destroyed) limits.release(r)
      else socket.once!('close', () => releaseUnclaimed(limits, r))
    }
    else {
      r.timer = setTimeout(releaseUnclaimed, UNCLAIMED_MS, limits, r)
      r.timer.unref?.()
    }
    return r
  }

  /**
   * `open`: the connection takes over the upgrade's slot. Returns `false` when the peer's address
   * (known only now on crossws 0.4's Node adapter) is over `perIp`: the caller closes it.
   */
  function claim(context: Record<PropertyKey, unknown> | undefined, peer?: PeerWithConnection): Reservation | undefined | false {
    const r = context?.[kReservation] as Reservation | undefined
    if (!r) return undefined
    context![kReservation] = undefined
    clearTimeout(r.timer)
    r.claimed = true
    limits!.retake(r)
    if (peer && r.ip === undefined && limits!.caps.perIp !== undefined) {
      if (!limits!.addAddress(r, peerAddress(peer))) {
        limits!.release(r)
        rt.counters.limited.perIp++
        return false
      }
    }
    return r
  }

  /** Set by `drainAll()`: upgrades are refused, clients accepted meanwhile are closed at once. */
  let draining: { code: number, reason: string } | undefined

  /** Accept the client, answering with exactly one subprotocol (or none). */
  function accept(request: Request, protocol: string | undefined, context?: Record<PropertyKey, unknown>): UpgradeResult {
    const legacy = getLegacyNodeRequest(request)
    if (legacy) {
      // crossws 0.3's Node adapter lets `ws` echo the first offered token: leave exactly ours
      // there instead of adding a second header that clients reject.
      if (protocol) legacy.headers['sec-websocket-protocol'] = protocol
      else delete legacy.headers['sec-websocket-protocol']
    }
    const headers = protocol && !legacy ? { 'sec-websocket-protocol': protocol } : undefined
    if (!legacy) {
      // A wrapper may have put state in `request.context` (crossws 0.3 hands that to the peer by
      // itself; 0.4 only what the result carries).
      const own = (request as { context?: Record<PropertyKey, unknown> }).context
      if (own && context && own !== context) context = { ...own, ...context }
      else context ??= own
    }
    if (!headers && !context) return undefined
    // crossws 0.4 hands `context` from the result to the peer; 0.3 uses `request.context`.
    return { headers, context }
  }

  async function upgradeFirst(request: Request, offer: string[] | undefined, handshake: Handshake | undefined, reservation: Reservation | undefined): Promise<UpgradeResult> {
    const context = ((request as { context?: Record<PropertyKey, unknown> }).context ?? {}) as Record<PropertyKey, unknown>
    const pp: ProxyPeer = handshake
      ? peerFromHandshake(handshake, context as Record<string, unknown>, () => undefined)
      : { request, context: context as Record<string, unknown>, remoteAddress: getUpgradeRemoteAddress(request) }
    const connection = new ProxyConnection(rt, pp, offer)
    if (reservation) {
      context[kReservation] = undefined
      reservation.claimed = true
      clearTimeout(reservation.timer)
      connection.reservation = reservation
    }
    const socket = getUpgradeSocket(request)
    const dialled = connection.connectFirst()
    if (socket) connection.watchClientSocket(socket)
    const status = await dialled
    if (status !== undefined) return refuse(status)
    connection.expectAdoption(o.connectTimeout || 10_000)
    context[kPending] = connection
    const chosen = o.forwardProtocol ? connection.upstreamProtocol || undefined : undefined
    return accept(request, chosen, { [kPending]: connection })
  }

  function upgrade(request: Request): UpgradeResult | Promise<UpgradeResult> {
    let reservation: Reservation | Response | undefined
    try {
      if (draining) return refuse(503, undefined, { 'retry-after': '1' })
      // Refuse what `ws` and crossws 0.4 refuse before anything is dialled; crossws 0.3 lets
      // both through (the offer because this hook rewrites the header `ws` would check).
      if (isBeforeHttp11(getNodeRequest(request))) return refuse(400)
      const parsed = parseProtocolOffer(request.headers.get('sec-websocket-protocol'))
      if (parsed === undefined) return refuse(400)
      // What `ws` would refuse after this hook: refused here, before a slot is taken (limits).
      if (!isValidKeyAndVersion(request.headers)) return refuse(400)
      reservation = reserve(request)
      if (reservation instanceof Response) return reservation
      let offer = o.forwardProtocol ? parsed : undefined
      const filter = o.protocolOffer
      if (offer && filter) offer = filter(offer, request)
      const handshake = takeHandshake(request, offer)
      if (o.upstreamFirst) {
        return upgradeFirst(request, offer, handshake, reservation).catch(() => refuse(502))
      }
      if (handshake) {
        // Deno closes the request after the 101: `open` reads this snapshot instead.
        const context = (request as { context?: Record<PropertyKey, unknown> }).context
        if (context) context[kHandshake] = handshake
        return accept(request, offer?.[0], { [kHandshake]: handshake })
      }
      if (offer && filter && !getLegacyNodeRequest(request)) return accept(request, offer[0], { [kOffer]: offer })
      if (offer && getLegacyNodeRequest(request)) {
        // The header is rewritten below; `open` needs the client's whole offer.
        const context = (request as { context?: Record<PropertyKey, unknown> }).context
        if (context) context[kOffer] = offer
      }
      // Without forwarding, answer no protocol on both lines (crossws 0.3 would echo one).
      return accept(request, offer?.[0])
    }
    catch {
      if (reservation && !(reservation instanceof Response)) limits?.release(reservation)
      // A throw here would hang the client on crossws 0.3: answer instead.
      return refuse(500)
    }
  }

  function open(peer: PeerWithConnection): void {
    try {
      const context = peer.context as Record<PropertyKey, unknown>
      const reservation = claim(context, peer)
      if (reservation === false) {
        // After the 101 (the adapter showed `upgrade` no address): refuse with a close, undialled.
        (context?.[kPending] as ProxyConnection | undefined)?.end('shutdown', { code: 1008, reason: refusalText('perIp') })
        peer.close(1008, refusalText('perIp'))
        return
      }
      if (draining) {
        if (reservation) limits!.release(reservation)
        ;(context?.[kPending] as ProxyConnection | undefined)?.end('shutdown', draining)
        peer.close(draining.code, draining.reason)
        return
      }
      const pending = context?.[kPending] as ProxyConnection | undefined
      if (pending) {
        context[kPending] = undefined
        const r = pending.reservation
        if (r && r.ip === undefined && limits!.caps.perIp !== undefined && !limits!.addAddress(r, peerAddress(peer))) {
          rt.counters.limited.perIp++
          pending.end('shutdown', { code: 1008, reason: refusalText('perIp') })
          peer.close(1008, refusalText('perIp'))
          return
        }
        peer[kConnection] = pending
        pending.adopt(peer)
        return
      }
      // crossws 0.4's Node adapter shows `upgrade` no HTTP version: refuse here, undialled.
      if (isBeforeHttp11(getPeerNodeRequest(peer))) {
        if (reservation) limits!.release(reservation)
        peer.close(1002, 'HTTP/1.1 required')
        return
      }
      const handshake = context?.[kHandshake] as Handshake | undefined
      let connection: ProxyConnection
      if (handshake) {
        context[kHandshake] = undefined
        const pp = peerFromHandshake(handshake, peer.context as Record<string, unknown>, () => peer.remoteAddress)
        connection = new ProxyConnection(rt, pp, handshake.offer)
      }
      else {
        const offer = o.forwardProtocol
          ? (context?.[kOffer] as string[] | undefined) ?? parseProtocolOffer(peer.request?.headers.get('sec-websocket-protocol'))
          : undefined
        connection = new ProxyConnection(rt, peer as unknown as ProxyPeer, offer)
      }
      connection.reservation = reservation
      peer[kConnection] = connection
      connection.start(peer)
    }
    catch (error) {
      const reservation = peer[kConnection] ? undefined : claim(peer.context as Record<PropertyKey, unknown>)
      if (reservation) limits?.release(reservation)
      console.error('[nitro-ws-proxy] failed to open a proxied connection:', error)
      try { peer.close(1011, 'Proxy error') }
      catch {}
    }
  }

  return {
    upgrade: upgrade as unknown as WebSocketProxy['upgrade'],
    open,
    message(peer: PeerWithConnection, message) {
      const connection = peer[kConnection]
      // On Node the raw socket's own `message` event is relayed instead (it keeps the type).
      if (connection === undefined || !connection.readsClientHook) return
      const raw = message.rawData
      if (typeof raw === 'string') connection.fromClient(raw, false)
      else connection.fromClient(raw instanceof Uint8Array || raw instanceof ArrayBuffer ? raw : message.uint8Array(), true)
    },
    close(peer: PeerWithConnection, details) {
      const connection = peer[kConnection]
      // An adapter that reports closes as `{}` (Deno): the socket's own event carries the code.
      if (connection === undefined || (connection.readsClientCloseEvent && details?.code === undefined)) return
      connection.clientClosed(details?.code, details?.reason)
    },
    error(peer: PeerWithConnection, error) {
      peer[kConnection]?.clientFailed(error)
    },
    stats: () => snapshotCounters(rt.counters, pool, connections, limits),
    closeAll: (code = 1001, reason = 'Going Away', timeout = 5000) => closeAll(rt, code, reason, timeout),
    drainAll(options: WebSocketProxyDrainOptions = {}) {
      const code = options.code ?? 1001
      const reason = options.reason ?? 'Server shutting down'
      draining = { code, reason }
      pool.stop()
      return drain(rt, options.spread ?? 10_000, code, reason)
    },
    connections: () => [...connections].map(connection => connection.info()),
    closeMatching(match, code = 1008, reason = 'Revoked') {
      let closed = 0
      for (const connection of [...connections]) {
        let selected = false
        try { selected = match(connection.pp) }
        catch (error) { console.error('[nitro-ws-proxy] closeMatching: the match function threw:', error) }
        if (selected && connection.accepts('end')) {
          connection.end('revoked', { code, reason })
          closed++
        }
      }
      return closed
    },
  }
}

type ClosingSocket = { readyState: number, terminate?: () => void, close: () => void }

/**
 * Close every connection, one after another, evenly over `spread` ms (at most one timer tick per
 * 10 ms, closing as many as are due), then give closing handshakes 1 s before terminating.
 */
async function drain(rt: ProxyRuntime, spread: number, code: number, reason: string): Promise<void> {
  const pending = [...rt.connections]
  for (const connection of pending) markSocketBusy(connection.client?.raw)
  const sockets: ClosingSocket[] = []
  const started = Date.now()
  let done = 0
  while (done < pending.length) {
    // The i-th connection closes at i × spread / n: the first at once, the last just before `spread`.
    const due = spread > 0 ? Math.min(pending.length, Math.floor(((Date.now() - started) / spread) * pending.length) + 1) : pending.length
    for (; done < due; done++) sockets.push(...pending[done]!.shutdown(code, reason))
    if (done < pending.length) await new Promise(resolve => setTimeout(resolve, Math.max(10, Math.min(100, spread / pending.length))))
  }
  await settleSockets(sockets, 1000)
}

async function closeAll(rt: ProxyRuntime, code: number, reason: string, timeout: number): Promise<void> {
  const sockets: ClosingSocket[] = []
  for (const connection of [...rt.connections]) sockets.push(...connection.shutdown(code, reason))
  await settleSockets(sockets, timeout)
}

/** Wait (bounded) for sockets to finish their closing handshakes; terminate the rest. */
async function settleSockets(sockets: ClosingSocket[], timeout: number): Promise<void> {
  const deadline = Date.now() + timeout
  while (sockets.some(s => s.readyState !== 3) && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  for (const socket of sockets) {
    if (socket.readyState === 3) continue
    try {
      if (socket.terminate) socket.terminate()
      else socket.close()
    }
    catch {}
  }
}

function releaseUnclaimed(limits: ConnectionLimits, r: Reservation): void {
  if (!r.claimed) limits.release(r)
}

/** The upgrade's context (crossws 0.3 creates it; on 0.4 a wrapper may have; else create it). */
function contextOf(request: Request): Record<PropertyKey, unknown> {
  const holder = request as { context?: Record<PropertyKey, unknown> }
  if (!holder.context) Object.defineProperty(holder, 'context', { value: {}, enumerable: true, configurable: true, writable: true })
  return holder.context!
}

/** The client address a peer is counted by (a wrapper's `clientAddress`, else the adapter's). */
function peerAddress(peer: Peer): string | undefined {
  const context = peer.context as Record<string, unknown> | undefined
  if (typeof context?.clientAddress === 'string') return context.clientAddress
  try { return peer.remoteAddress }
  catch { return undefined }
}

const KEY_RE = /^[+/0-9A-Za-z]{22}==$/

/** RFC 6455 §4.2.1: a 16-byte base64 `Sec-WebSocket-Key` and version 13 (`ws` also takes 8). */
function isValidKeyAndVersion(headers: Headers): boolean {
  const key = headers.get('sec-websocket-key')
  const version = headers.get('sec-websocket-version')
  return key !== null && KEY_RE.test(key.trim()) && (version === '13' || version === '8')
}
