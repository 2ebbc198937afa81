import type { WebSocket as WsSocket } from 'ws'
import type { ProxyPeer } from '../../src/index'
import { afterEach, describe, expect, it } from 'vitest'
import { createWebSocketProxy } from '../../src/index'
import { cleanup, CROSSWS_LINES, ctorOption, sleep, startProxy, startUpstream, usesWsCtor, waitFor, wsConnect } from '../helpers'

const CHUNK = 64 * 1024
/** Bounded pusher: writes 64 KiB frames while its own queue is short, at most `max` frames or `ms`. */
function pushFrames(ws: WsSocket, { max = 3000, ms = 4000 } = {}): { sent: () => number } {
  let sent = 0
  const payload = Buffer.alloc(CHUNK, 7)
  const until = Date.now() + ms
  const tick = () => {
    if (ws.readyState !== 1 || sent >= max || Date.now() > until) return
    while (ws.bufferedAmount < 4 * CHUNK && sent < max) {
      ws.send(payload, { binary: true })
      sent++
    }
    setImmediate(tick)
  }
  tick()
  return { sent: () => sent }
}

function rawClientOf(peer: ProxyPeer): WsSocket {
  return (peer as unknown as { _internal: { ws: WsSocket } })._internal.ws
}

describe.each(CROSSWS_LINES)('flow control on crossws %s', (line) => {
  afterEach(() => cleanup())

  it.runIf(usesWsCtor)('a client that stops reading pauses the upstream instead of buffering it', async () => {
    let pusher: { sent: () => number } | undefined
    const upstream = await startUpstream({ onConnection: (ws) => { pusher = pushFrames(ws) } })
    let clientSide: WsSocket | undefined
    const proxy = createWebSocketProxy({
      target: upstream.url,
      ...ctorOption(),
      highWaterMark: 256 * 1024,
      lowWaterMark: 64 * 1024,
      onUpstreamOpen: (peer) => { clientSide = rawClientOf(peer) },
    })
    const server = await startProxy(proxy, { crossws: line })
    const client = await wsConnect(server.url)
    // Stop reading: the kernel buffers fill, then the proxy's send queue toward this client grows.
    ;(client.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
    await waitFor(() => clientSide !== undefined && pusher !== undefined)

    let peakQueued = 0
    for (let i = 0; i < 30; i++) {
      await sleep(50)
      peakQueued = Math.max(peakQueued, clientSide!.bufferedAmount)
    }
    const relayed = proxy.stats().bytes.toClient
    // Paused near the high-water mark: the proxy holds a bounded amount, the rest stays upstream.
    expect(peakQueued).toBeLessThan(2 * 1024 * 1024)
    expect(relayed).toBeLessThan(24 * 1024 * 1024)
    expect(pusher!.sent() * CHUNK).toBeLessThan(48 * 1024 * 1024)

    // Reading again resumes the flow.
    ;(client.ws as unknown as { _socket: { resume: () => void } })._socket.resume()
    await waitFor(() => proxy.stats().bytes.toClient > relayed + 4 * 1024 * 1024, { timeout: 5000, label: 'flow to resume' })
    expect(client.isOpen).toBe(true)
  })

  it('an upstream that stops reading pauses the client instead of buffering it', async () => {
    const upstream = await startUpstream({
      onConnection: (ws) => { (ws as unknown as { _socket: { pause: () => void } })._socket.pause() },
    })
    const proxy = createWebSocketProxy({ target: upstream.url, ...ctorOption(), highWaterMark: 256 * 1024, lowWaterMark: 64 * 1024 })
    const server = await startProxy(proxy, { crossws: line })
    const client = await wsConnect(server.url)
    await waitFor(() => upstream.connections === 1)
    await sleep(50)
    const pusher = pushFrames(client.ws, { ms: 1500 })
    await sleep(1600)
    // The proxy stopped reading the client: only a bounded amount reached the upstream socket.
    expect(proxy.stats().bytes.toUpstream).toBeLessThan(24 * 1024 * 1024)
    expect(pusher.sent() * CHUNK).toBeLessThan(48 * 1024 * 1024)
    expect(client.isOpen).toBe(true)
  })

  it.runIf(!usesWsCtor)('a WHATWG upstream cannot be paused: a client that stops reading is closed at the hard cap', async () => {
    const closes: Array<{ cause: string, code?: number }> = []
    const upstream = await startUpstream({ onConnection: (ws) => { pushFrames(ws, { ms: 3000 }) } })
    const proxy = createWebSocketProxy({
      target: upstream.url,
      ...ctorOption(),
      maxBufferedAmount: 2 * 1024 * 1024,
      onUpstreamClose: (_peer, details) => { closes.push({ cause: details.cause, code: details.code }) },
    })
    const server = await startProxy(proxy, { crossws: line })
    const client = await wsConnect(server.url)
    ;(client.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
    await waitFor(() => closes.length === 1, { timeout: 5000, label: 'hard cap close', describe: () => proxy.stats() })
    expect(closes[0]).toEqual({ cause: 'backpressure-limit', code: 1008 })
    // Bounded: what was relayed is about the cap plus what the kernel buffers took, not everything.
    expect(proxy.stats().bytes.toClient).toBeLessThan(24 * 1024 * 1024)
    await waitFor(() => upstream.connections === 0, { label: 'upstream closed' })
  })

  it.runIf(usesWsCtor)('the hard cap never closes a leg that can be paused: the other side waits instead', async () => {
    const closes: Array<{ cause: string, code?: number }> = []
    let pusher: { sent: () => number } | undefined
    const upstream = await startUpstream({ onConnection: (ws) => { pusher = pushFrames(ws, { ms: 1500 }) } })
    const proxy = createWebSocketProxy({
      target: upstream.url,
      ...ctorOption(),
      // Even a cap below the pause mark does not apply: the upstream (a `ws` socket) is paused.
      highWaterMark: 512 * 1024,
      maxBufferedAmount: 256 * 1024,
      lowWaterMark: 64 * 1024,
      onUpstreamClose: (_peer, details) => { closes.push({ cause: details.cause, code: details.code }) },
    })
    const server = await startProxy(proxy, { crossws: line })
    const client = await wsConnect(server.url)
    const socket = (client.ws as unknown as { _socket: { pause: () => void, resume: () => void } })._socket
    socket.pause()
    await sleep(1000)
    expect(closes).toEqual([])
    expect(proxy.stats().closed['backpressure-limit']).toBe(0)
    // Bounded by the water marks and kernel buffers, not by what the upstream wanted to send.
    expect(proxy.stats().bytes.toClient).toBeLessThan(24 * 1024 * 1024)
    socket.resume()
    await waitFor(() => pusher!.sent() > 0 && client.messages.length > 0, { label: 'relay resumes' })
    expect(client.isOpen).toBe(true)
  })
})
