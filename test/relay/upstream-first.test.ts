import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { createWebSocketProxy } from '../../src/index'
import { cleanup, CROSSWS_LINES, ctorOption, rawUpgrade, refusedUrl, sleep, startHangingUpstream, startProxy, startUpstream, usesWsCtor, waitFor, wsConnect } from '../helpers'

describe.each(CROSSWS_LINES)('upstream-first handshake on crossws %s', (line) => {
  afterEach(() => cleanup())

  it.runIf(usesWsCtor).each([401, 403, 404])('an upstream %i reaches the client as that HTTP status', async (status) => {
    const upstream = await startUpstream({ reject: status })
    const proxy = createWebSocketProxy({ target: upstream.url, ...ctorOption(), upstreamFirst: true })
    const server = await startProxy(proxy, { crossws: line })
    const res = await rawUpgrade(server.url)
    expect(res.status).toBe(status)
    expect(upstream.handshakes.length).toBe(1)
    expect(proxy.stats().open).toBe(0)
  })

  it.runIf(!usesWsCtor)('a WHATWG constructor does not expose the refusal status: 502', async () => {
    const upstream = await startUpstream({ reject: 403 })
    const proxy = createWebSocketProxy({ target: upstream.url, ...ctorOption(), upstreamFirst: true })
    const server = await startProxy(proxy, { crossws: line })
    expect((await rawUpgrade(server.url)).status).toBe(502)
    expect(upstream.handshakes.length).toBe(1)
  })

  it('an unreachable upstream is a 502 and a silent one a 504', async () => {
    const proxy = createWebSocketProxy({ target: await refusedUrl(), ...ctorOption(), upstreamFirst: true })
    const server = await startProxy(proxy, { crossws: line })
    expect((await rawUpgrade(server.url)).status).toBe(502)

    const hanging = await startHangingUpstream()
    const slow = createWebSocketProxy({ target: hanging.url, ...ctorOption(), upstreamFirst: true, connectTimeout: 150 })
    const slowServer = await startProxy(slow, { crossws: line })
    const started = Date.now()
    expect((await rawUpgrade(slowServer.url)).status).toBe(504)
    expect(Date.now() - started).toBeLessThan(1500)
    await waitFor(() => hanging.sockets === 0, { label: 'hanging upstream socket released' })
  })

  // crossws 0.4 shows `upgrade` no socket: there the adoption timeout (`connectTimeout`) bounds it.
  it.runIf(line === '0.3')('a client that leaves during the dial releases the upstream at once, not at the adoption timeout', async () => {
    const upstream = await startUpstream({ handshakeDelay: 300 })
    const closes: string[] = []
    const proxy = createWebSocketProxy({
      target: upstream.url,
      ...ctorOption(),
      upstreamFirst: true,
      connectTimeout: 10_000,
      onUpstreamClose: (_peer, details) => { closes.push(details.cause) },
    })
    const server = await startProxy(proxy, { crossws: line })
    const { port, hostname } = new URL(server.url)
    const client = connect(Number(port), hostname)
    client.on('error', () => {})
    client.write(`GET / HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
    await waitFor(() => upstream.handshakes.length === 1, { label: 'the dial started' })
    // The client resets while the upstream's handshake is still pending (300 ms).
    client.resetAndDestroy()
    const left = Date.now()
    await waitFor(() => proxy.stats().open === 0, { timeout: 2000, label: 'the connection released' })
    await waitFor(() => upstream.connections === 0, { timeout: 2000, label: 'the upstream closed' })
    expect(Date.now() - left).toBeLessThan(1500)
    expect(closes).toEqual(['client'])
  })

  it('the client gets the subprotocol the upstream chose, in exactly one header', async () => {
    const upstream = await startUpstream({ handleProtocols: protocols => protocols.has('v2') ? 'v2' : false })
    const proxy = createWebSocketProxy({ target: upstream.url, ...ctorOption(), upstreamFirst: true })
    const server = await startProxy(proxy, { crossws: line })
    const res = await rawUpgrade(server.url, { 'sec-websocket-protocol': 'v1, v2' })
    expect(res.status).toBe(101)
    expect(res.header('sec-websocket-protocol')).toEqual(['v2'])
    res.close()
    const client = await wsConnect(server.url, { protocols: ['v1', 'v2'] })
    expect(client.protocol).toBe('v2')
    client.send('ping')
    expect((await client.next()).text).toBe('ping')
  })

  it('messages the upstream sends right after its handshake are not lost', async () => {
    const upstream = await startUpstream({
      onConnection: (ws) => {
        for (let i = 0; i < 5; i++) ws.send(`hello-${i}`)
        ws.send(Buffer.from([1, 2, 3]), { binary: true })
      },
    })
    const proxy = createWebSocketProxy({ target: upstream.url, ...ctorOption(), upstreamFirst: true })
    const server = await startProxy(proxy, { crossws: line })
    const client = await wsConnect(server.url)
    for (let i = 0; i < 5; i++) {
      const message = await client.next()
      expect([message.text, message.isBinary]).toEqual([`hello-${i}`, false])
    }
    const binary = await client.next()
    expect([[...binary.data], binary.isBinary]).toEqual([[1, 2, 3], true])
    client.send('after')
    expect((await client.next()).text).toBe('after')
  })

  it('an accepted client whose handshake never completes leaves no upstream behind', async () => {
    const upstream = await startUpstream()
    const proxy = createWebSocketProxy({ target: upstream.url, ...ctorOption(), upstreamFirst: true, connectTimeout: 200 })
    const server = await startProxy(proxy, { crossws: line })
    // Many clients at once, dropped right after sending the request.
    const res = await Promise.all(Array.from({ length: 5 }, () => rawUpgrade(server.url)))
    for (const r of res) r.socket.destroy()
    await sleep(50)
    await waitFor(() => upstream.connections === 0 && proxy.stats().open === 0, { timeout: 2000, label: 'all released', describe: () => proxy.stats() })
  })
})

describe.each(CROSSWS_LINES)('forwardProtocol: false on crossws %s', (line) => {
  afterEach(() => cleanup())

  it.each([false, true])('answers no subprotocol (upstreamFirst: %s), like the other line', async (upstreamFirst) => {
    const upstream = await startUpstream()
    const proxy = createWebSocketProxy({ target: upstream.url, ...ctorOption(), forwardProtocol: false, upstreamFirst })
    const server = await startProxy(proxy, { crossws: line })
    const res = await rawUpgrade(server.url, { 'sec-websocket-protocol': 'chat' })
    expect(res.status).toBe(101)
    expect(res.header('sec-websocket-protocol')).toEqual([])
    res.close()
  })

  it('a wrapper that negotiates itself gets exactly its own answer', async () => {
    const upstream = await startUpstream()
    const proxy = createWebSocketProxy({ target: upstream.url, ...ctorOption(), forwardProtocol: false })
    const hooks = {
      ...proxy,
      upgrade: async (request: Parameters<typeof proxy.upgrade>[0]) => {
        await proxy.upgrade(request)
        return { headers: { 'sec-websocket-protocol': 'mine' } }
      },
    }
    const server = await startProxy(hooks, { crossws: line })
    const res = await rawUpgrade(server.url, { 'sec-websocket-protocol': 'other, mine' })
    expect(res.status).toBe(101)
    expect(res.header('sec-websocket-protocol')).toEqual(['mine'])
    res.close()
  })
})
