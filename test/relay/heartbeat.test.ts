import type { AddressInfo } from 'node:net'
import { WebSocket, WebSocketServer } from 'ws'
import { afterEach, describe, expect, it } from 'vitest'
import { createWebSocketProxy } from '../../src/index'
import { cleanup, CROSSWS_LINES, ctorOption, sleep, startProxy, startUpstream, track, usesWsCtor, waitFor, withTimeout, wsConnect } from '../helpers'

/** A `ws` upstream that never answers pings (a frozen backend behind a live TCP connection). */
async function startFrozenUpstream(): Promise<{ url: string, connections: () => number, closes: Array<{ code: number }> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, autoPong: false })
  await new Promise(resolve => wss.once('listening', resolve))
  const closes: Array<{ code: number }> = []
  wss.on('connection', (ws) => {
    ws.on('error', () => {})
    ws.on('close', code => closes.push({ code }))
  })
  track(() => new Promise<void>((resolve) => {
    for (const ws of wss.clients) ws.terminate()
    wss.close(() => resolve())
  }))
  return { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, connections: () => wss.clients.size, closes }
}

describe.each(CROSSWS_LINES)('heartbeats on crossws %s', (line) => {
  afterEach(() => cleanup())

  it.runIf(usesWsCtor)('a frozen upstream is detected and the client closed with 1011', async () => {
    const upstream = await startFrozenUpstream()
    const proxy = createWebSocketProxy({ target: upstream.url, ...ctorOption(), heartbeatInterval: 100, heartbeatTimeout: 60 })
    const server = await startProxy(proxy, { crossws: line })
    const client = await wsConnect(server.url)
    const closed = await withTimeout(client.closed, 2000, 'client close')
    expect(closed.code).toBe(1011)
    expect(closed.reason).toBe('Upstream heartbeat timeout')
    expect(proxy.stats().closed['upstream-heartbeat']).toBe(1)
    await waitFor(() => upstream.connections() === 0, { label: 'frozen upstream released' })
  })

  it('a client that stops answering pings is dropped and the upstream gets 1001', async () => {
    const upstream = await startUpstream()
    const proxy = createWebSocketProxy({ target: upstream.url, ...ctorOption(), heartbeatInterval: 100, heartbeatTimeout: 60 })
    const server = await startProxy(proxy, { crossws: line })
    const silent = new WebSocket(server.url, { autoPong: false })
    track(() => silent.terminate())
    silent.on('error', () => {})
    await withTimeout(new Promise(resolve => silent.once('open', resolve)), 2000, 'open')
    await waitFor(() => upstream.connections === 1)
    await waitFor(() => upstream.closes.length === 1, { timeout: 2000, label: 'upstream close' })
    expect(upstream.closes[0]!.code).toBe(usesWsCtor ? 1001 : 1000)
    expect(proxy.stats().closed['client-heartbeat']).toBe(1)
  })

  it('live legs survive many heartbeat rounds, and pings from either end break nothing', async () => {
    const upstream = await startUpstream()
    const proxy = createWebSocketProxy({ target: upstream.url, ...ctorOption(), heartbeatInterval: 40, heartbeatTimeout: 30 })
    const server = await startProxy(proxy, { crossws: line })
    const client = await wsConnect(server.url)
    await waitFor(() => upstream.connections === 1)
    for (let i = 0; i < 10; i++) {
      client.ws.ping()
      for (const ws of upstream.clients) ws.ping()
      client.send(`m${i}`)
      expect((await client.next()).text).toBe(`m${i}`)
      await sleep(40)
    }
    expect(client.isOpen).toBe(true)
    expect(proxy.stats().closed['upstream-heartbeat'] + proxy.stats().closed['client-heartbeat']).toBe(0)
  })
})
