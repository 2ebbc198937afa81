import { createHash } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { createWebSocketProxy } from '../../src/index'
import { cleanup, CROSSWS_LINES, ctorOption, startProxy, startUpstream, track, usesWsCtor, waitFor, wsConnect } from '../helpers'

function sha(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

describe.each(CROSSWS_LINES)('frame passthrough on crossws %s', (line) => {
  afterEach(() => cleanup())

  /** The proxy with its `message` hook wrapped, counting what the crossws hook still sees. */
  async function setup(passthrough: boolean) {
    const upstream = await startUpstream()
    const proxy = createWebSocketProxy({ target: upstream.url, ...ctorOption(), passthrough })
    let hookCalls = 0
    const hooks = { ...proxy, message: (peer: any, message: any) => { hookCalls++; return proxy.message(peer, message) } }
    const server = await startProxy(hooks, { crossws: line })
    const client = await wsConnect(server.url)
    // Settle: one echo proves both legs open.
    client.send('warm-up')
    expect((await client.next()).text).toBe('warm-up')
    return { upstream, proxy, client, hookCalls: () => hookCalls }
  }

  it.runIf(usesWsCtor)('relays below the message hook once both legs are open; passthrough: false keeps the hook', async () => {
    const on = await setup(true)
    const before = on.hookCalls()
    for (let i = 0; i < 20; i++) on.client.send(`m${i}`)
    for (let i = 0; i < 20; i++) expect((await on.client.next()).text).toBe(`m${i}`)
    expect(on.hookCalls()).toBe(before)

    const off = await setup(false)
    const offBefore = off.hookCalls()
    for (let i = 0; i < 20; i++) off.client.send(`m${i}`)
    for (let i = 0; i < 20; i++) expect((await off.client.next()).text).toBe(`m${i}`)
    expect(off.hookCalls() - offBefore).toBe(20)
  })

  it('fragmented messages stay one message of the right type, with pings between fragments', async () => {
    const { upstream, proxy, client } = await setup(true)
    const ws = client.ws
    const received = upstream.received.length
    ws.send('héllo ', { fin: false, binary: false })
    ws.ping()
    ws.send('wörld ', { fin: false, binary: false })
    ws.send('✓', { fin: true, binary: false })
    const text = await client.next()
    expect([text.text, text.isBinary]).toEqual(['héllo wörld ✓', false])
    ws.send(Buffer.from([1, 2]), { fin: false, binary: true })
    ws.send(Buffer.from([3]), { fin: true, binary: true })
    const binary = await client.next()
    expect([[...binary.data], binary.isBinary]).toEqual([[1, 2, 3], true])
    expect(upstream.received.slice(received).map(f => [f.text, f.isBinary])).toEqual([['héllo wörld ✓', false], ['\u0001\u0002\u0003', true]])
    // Counted once per message, however many frames carried it.
    await waitFor(() => proxy.stats().messages.toClient === 3)
    expect(proxy.stats().messages.toUpstream).toBe(3)
  })

  it('upstream fragments reach the client as one message', async () => {
    const { upstream, client } = await setup(true)
    const [socket] = upstream.clients
    socket!.send('part one, ', { fin: false })
    socket!.send('part two', { fin: true })
    const message = await client.next()
    expect([message.text, message.isBinary]).toEqual(['part one, part two', false])
  })

  it('large messages (1 MiB) and bursts of small ones arrive intact and in order', async () => {
    const { client } = await setup(true)
    const big = Buffer.alloc(1024 * 1024)
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xFF
    client.send(big)
    const echoed = await client.next(5000)
    expect(echoed.isBinary).toBe(true)
    expect(sha(echoed.data)).toBe(sha(big))
    for (let i = 0; i < 1000; i++) client.send(`n${i}`)
    for (let i = 0; i < 1000; i++) expect((await client.next()).text).toBe(`n${i}`)
  })

  it.runIf(usesWsCtor)('no ping, pong or close lands inside a streamed frame (held until the frame ends)', async () => {
    // Both ends ping the proxy every 2 ms while 24 MiB frames stream through it in pieces: the
    // proxy's automatic pongs on each leg must wait for the frame being streamed into that leg.
    let upstreamPongs = 0
    const upstream = await startUpstream({
      onConnection: (ws) => {
        const timer = setInterval(() => ws.ping(), 2)
        ws.on('pong', () => { upstreamPongs++ })
        ws.on('close', () => clearInterval(timer))
      },
    })
    const proxy = createWebSocketProxy({ target: upstream.url, ...ctorOption() })
    const server = await startProxy(proxy, { crossws: line })
    const client = await wsConnect(server.url)
    client.send('warm-up')
    expect((await client.next()).text).toBe('warm-up')
    let pongs = 0
    client.ws.on('pong', () => { pongs++ })
    const errors: unknown[] = []
    client.ws.on('error', error => errors.push(error))
    const big = Buffer.alloc(24 * 1024 * 1024)
    for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) & 0xFF
    for (let round = 0; round < 2; round++) {
      client.send(big)
      // The client pings the proxy mid-download too: the proxy's pongs must wait for frame ends.
      const pinger = setInterval(() => client.ws.ping(), 2)
      const echoed = await client.next(15_000).finally(() => clearInterval(pinger))
      expect(echoed.isBinary).toBe(true)
      expect(sha(echoed.data)).toBe(sha(big))
    }
    expect(errors).toEqual([])
    expect(pongs).toBeGreaterThan(0)
    expect(upstreamPongs).toBeGreaterThan(0)
    expect(client.isOpen).toBe(true)
    // Held control frames went out: the close handshake still completes both ways.
    await client.close(4001, 'done')
    await waitFor(() => upstream.closes.length === 1)
    expect(upstream.closes[0]).toEqual({ code: 4001, reason: 'done' })
  }, 30_000)

  it('close codes and reasons still cross over in both directions', async () => {
    const a = await setup(true)
    a.client.send('close:4321:from upstream')
    const closed = await a.client.closed
    expect([closed.code, closed.reason]).toEqual([4321, 'from upstream'])

    const b = await setup(true)
    await b.client.close(4000, 'from client')
    await waitFor(() => b.upstream.closes.length === 1)
    expect(b.upstream.closes[0]).toEqual({ code: 4000, reason: 'from client' })
  })
})

describe.each(CROSSWS_LINES)('a compressed upstream leg on crossws %s', (line) => {
  afterEach(() => cleanup())

  it.runIf(usesWsCtor)('is relayed message by message (no passthrough), text and binary intact', async () => {
    const { WebSocketServer } = await import('ws')
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: { threshold: 0 } })
    await new Promise(resolve => wss.once('listening', resolve))
    const extensions: string[] = []
    wss.on('connection', (ws, req) => {
      extensions.push(String(req.headers['sec-websocket-extensions']))
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
    })
    track(() => new Promise<void>((resolve) => {
      for (const ws of wss.clients) ws.terminate()
      wss.close(() => resolve())
    }))
    const url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}`
    const proxy = createWebSocketProxy({ target: url, ...ctorOption(), webSocketOptions: { perMessageDeflate: true } })
    let hookCalls = 0
    const server = await startProxy({ ...proxy, message: (peer: any, message: any) => { hookCalls++; return proxy.message(peer, message) } }, { crossws: line })
    const client = await wsConnect(server.url)
    for (let i = 0; i < 5; i++) {
      client.send(`text ${i} ${'x'.repeat(200)}`)
      const echo = await client.next()
      expect([echo.text, echo.isBinary]).toEqual([`text ${i} ${'x'.repeat(200)}`, false])
    }
    client.send(Buffer.alloc(5000, 3))
    const binary = await client.next()
    expect([binary.data.length, binary.isBinary]).toEqual([5000, true])
    expect(extensions[0]).toMatch(/permessage-deflate/)
    expect(hookCalls).toBe(6)
  })
})
