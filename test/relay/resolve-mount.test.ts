import { afterEach, describe, expect, it } from 'vitest'
import { createWebSocketProxy } from '../../src/index'
import { cleanup, CROSSWS_LINES, ctorOption, rawUpgrade, startProxy, startUpstream, waitFor, wsConnect } from '../helpers'

// Nitro and h3 mount hooks through the adapter's async `resolve`: the same guarantees must hold.
describe.each(CROSSWS_LINES)('hooks mounted through resolve() on crossws %s', (line) => {
  afterEach(() => cleanup())

  it.each([false, true])('relays text as text and binary as binary, both ways (upstreamFirst: %s)', async (upstreamFirst) => {
    const upstream = await startUpstream({ onConnection: ws => ws.send('greeting') })
    const proxy = createWebSocketProxy({ target: upstream.url, ...ctorOption(), upstreamFirst })
    const server = await startProxy(proxy, { crossws: line, viaResolve: true })
    const client = await wsConnect(server.url, { protocols: ['v1'] })
    expect(client.protocol).toBe('v1')
    expect((await client.next()).text).toBe('greeting')
    client.send('{"json":true}')
    client.send(Buffer.from([0, 255]))
    const text = await client.next()
    const binary = await client.next()
    expect([text.text, text.isBinary]).toEqual(['{"json":true}', false])
    expect([[...binary.data], binary.isBinary]).toEqual([[0, 255], true])
    const frames = upstream.received.map(f => f.isBinary)
    expect(frames).toEqual([false, true])
    await client.close(4001, 'bye')
    await waitFor(() => upstream.closes.length === 1)
    expect(upstream.closes[0]).toEqual({ code: 4001, reason: 'bye' })
  })

  it('answers exactly one subprotocol header', async () => {
    const upstream = await startUpstream()
    const proxy = createWebSocketProxy({ target: upstream.url, ...ctorOption() })
    const server = await startProxy(proxy, { crossws: line, viaResolve: true })
    const res = await rawUpgrade(server.url, { 'sec-websocket-protocol': 'a, b' })
    expect(res.status).toBe(101)
    expect(res.header('sec-websocket-protocol')).toEqual(['a'])
    res.close()
  })
})
