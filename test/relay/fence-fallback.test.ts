/**
 * The fence (src/core/fence.ts) is the only reader of private fields of `ws`, crossws and Node
 * sockets. With `NITRO_WS_PROXY_INTERNALS=0` it reports every layout as unknown, as it would for
 * a `ws` or crossws release whose internals changed: the relay must fall back to the public
 * paths (crossws hooks, `ws` messages) and keep working.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createWebSocketProxy } from '../../src/index'
import { cleanup, CROSSWS_LINES, ctorOption, startProxy, startUpstream, usesWsCtor, waitFor, wsConnect } from '../helpers'

describe.each(CROSSWS_LINES)('fence fallback on crossws %s', (line) => {
  afterEach(async () => {
    delete process.env.NITRO_WS_PROXY_INTERNALS
    await cleanup()
  })

  async function setup(internals: boolean) {
    if (internals) delete process.env.NITRO_WS_PROXY_INTERNALS
    else process.env.NITRO_WS_PROXY_INTERNALS = '0'
    const upstream = await startUpstream()
    const proxy = createWebSocketProxy({ target: upstream.url, ...ctorOption() })
    let hookCalls = 0
    const hooks = { ...proxy, message: (peer: any, message: any) => { hookCalls++; return proxy.message(peer, message) } }
    const server = await startProxy(hooks, { crossws: line })
    return { upstream, proxy, server, hookCalls: () => hookCalls }
  }

  it('with private fields off, messages still flow both ways through the crossws message hook', { timeout: 10_000 }, async () => {
    const { upstream, proxy, server, hookCalls } = await setup(false)
    const client = await wsConnect(server.url)
    for (let i = 0; i < 50; i++) client.send(`m${i}`)
    client.send(Buffer.from([0, 1, 2, 255]))
    for (let i = 0; i < 50; i++) expect((await client.next()).text).toBe(`m${i}`)
    const binary = await client.next()
    expect([...binary.data]).toEqual([0, 1, 2, 255])
    expect(binary.isBinary).toBe(true)
    // The relay read the client through the public hook, not the raw socket.
    expect(hookCalls()).toBe(51)
    // crossws 0.3's hook cannot tell text from binary (documented): 0.4 keeps the type.
    if (line === '0.4') expect(upstream.received.slice(0, 50).every(f => !f.isBinary)).toBe(true)
    expect(upstream.received.map(f => f.text).slice(0, 50)).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`))

    // Close codes still cross (the upstream closes: crossws 0.3 hands the command over as binary).
    upstream.connection().close(4002, 'bye')
    expect(await client.closed).toMatchObject({ code: 4002, reason: 'bye' })
    await waitFor(() => proxy.stats().open === 0, { label: 'connection released' })
  })

  it.runIf(usesWsCtor)('with private fields on, the same traffic bypasses the hook (passthrough)', async () => {
    const { server, hookCalls } = await setup(true)
    const client = await wsConnect(server.url)
    client.send('warm-up')
    expect((await client.next()).text).toBe('warm-up')
    const before = hookCalls()
    for (let i = 0; i < 20; i++) client.send(`m${i}`)
    for (let i = 0; i < 20; i++) expect((await client.next()).text).toBe(`m${i}`)
    expect(hookCalls()).toBe(before)
  })
})
