import { afterEach, describe, expect, it } from 'vitest'
import { createWebSocketProxy } from '../../src/index'
import { cleanup, CROSSWS_LINES, ctorOption, startProxy, startUpstream, usesWsCtor, waitFor, withTimeout, wsConnect } from '../helpers'

describe.each(CROSSWS_LINES)('shutdown and counters on crossws %s', (line) => {
  afterEach(() => cleanup())

  it('closeAll() closes every client with 1001 and every upstream', async () => {
    const upstream = await startUpstream()
    const proxy = createWebSocketProxy({ target: upstream.url, ...ctorOption() })
    const server = await startProxy(proxy, { crossws: line })
    const clients = await Promise.all(Array.from({ length: 5 }, () => wsConnect(server.url)))
    // One echo each: every upstream leg is open on the proxy's side too, not just accepted.
    for (const client of clients) {
      client.send('ready')
      expect((await client.next()).text).toBe('ready')
    }
    expect(upstream.connections).toBe(5)
    expect(proxy.stats().open).toBe(5)
    await withTimeout(proxy.closeAll(), 3000, 'closeAll')
    for (const client of clients) {
      const closed = await withTimeout(client.closed, 2000, 'client close')
      expect([closed.code, closed.reason]).toEqual([1001, 'Going Away'])
    }
    await waitFor(() => upstream.connections === 0, { label: 'upstreams closed' })
    expect(upstream.closes.map(c => c.code)).toEqual(Array(5).fill(usesWsCtor ? 1001 : 1000))
    const stats = proxy.stats()
    expect(stats.open).toBe(0)
    expect(stats.closed.shutdown).toBe(5)
  })

  it('counts connections, messages and bytes each way', async () => {
    const upstream = await startUpstream()
    const proxy = createWebSocketProxy({ target: upstream.url, ...ctorOption() })
    const server = await startProxy(proxy, { crossws: line })
    const client = await wsConnect(server.url)
    client.send('abcd')
    await client.next()
    client.send(Buffer.alloc(10), true)
    await client.next()
    await client.close(1000)
    await waitFor(() => proxy.stats().open === 0)
    const stats = proxy.stats()
    expect(stats.opened).toBe(1)
    expect(stats.closed.client).toBe(1)
    expect(stats.messages).toEqual({ toUpstream: 2, toClient: 2 })
    expect(stats.bytes).toEqual({ toUpstream: 14, toClient: 14 })
  })
})
