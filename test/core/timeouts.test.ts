/**
 * `connectTimeout` (resolving the target plus the upstream handshake) and `clientIdleTimeout`
 * (no frame from the client), tested with tiny values against hanging or silent peers.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { CROSSWS_LINES, cleanup, sleep, startHangingUpstream, startUpstream, usesWsCtor, waitFor, withTimeout, wsConnect } from '../helpers'
import { proxied } from './setup'

afterEach(() => cleanup())

describe.each(CROSSWS_LINES)('crossws %s: connectTimeout', (line) => {
  it('an upstream that never answers closes the client with 1011 and leaves no socket', async () => {
    const hanging = await startHangingUpstream()
    const { server } = await proxied(line, { target: hanging.url, connectTimeout: 100 })
    const client = await wsConnect(server.url)
    const opened = Date.now()

    const { code, at } = await withTimeout(client.closed, 1_500, 'client close')

    expect(code).toBe(1011)
    expect(at - opened).toBeGreaterThanOrEqual(50)
    expect(at - opened).toBeLessThan(1_000)
    expect(hanging.accepted).toBe(1)
    await waitFor(() => hanging.sockets === 0, { label: 'upstream socket released', describe: () => hanging.sockets })
    // undici 6 (Node 22's global) re-dials an idle pool socket after the abort: only `ws` is held to this.
    if (usesWsCtor) expect(hanging.idleSockets).toBe(0)
  })

  it('covers a target resolver that never settles', async () => {
    const { server } = await proxied(line, { target: () => new Promise<string>(() => {}), connectTimeout: 100 })
    const client = await wsConnect(server.url)

    expect((await withTimeout(client.closed, 1_500, 'client close')).code).toBe(1011)
  })

  it('connectTimeout: 0 waits for the upstream indefinitely', async () => {
    const hanging = await startHangingUpstream()
    const { server } = await proxied(line, { target: hanging.url, connectTimeout: 0 })
    const client = await wsConnect(server.url)

    await sleep(400)

    expect(client.isOpen).toBe(true)
    expect(hanging.sockets).toBe(1)
  })

  it('does not fire once the upstream is open', async () => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, { target: upstream.url, connectTimeout: 100 })
    const client = await wsConnect(server.url)
    client.send('a')
    await client.next()

    await sleep(250)

    expect(client.isOpen).toBe(true)
    client.send('b')
    expect((await client.next()).text).toBe('b')
  })
})

describe.each(CROSSWS_LINES)('crossws %s: clientIdleTimeout', (line) => {
  it('closes a silent client with 1001 and releases its upstream', async () => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, { target: upstream.url, clientIdleTimeout: 150 })
    const client = await wsConnect(server.url)
    const opened = Date.now()
    await waitFor(() => upstream.connections === 1, { label: 'upstream open' })

    const { code, at } = await withTimeout(client.closed, 1_500, 'client close')

    expect(code).toBe(1001)
    expect(at - opened).toBeGreaterThanOrEqual(100)
    await waitFor(() => upstream.connections === 0, { label: 'upstream released' })
  })

  it('traffic from the upstream does not keep a silent client alive', async () => {
    const upstream = await startUpstream({
      onConnection: (ws) => {
        const timer = setInterval(() => ws.send('tick'), 30)
        ws.on('close', () => clearInterval(timer))
      },
    })
    const { server } = await proxied(line, { target: upstream.url, clientIdleTimeout: 150 })
    const client = await wsConnect(server.url)

    expect((await withTimeout(client.closed, 1_500, 'client close')).code).toBe(1001)
    expect(client.messages.length).toBeGreaterThan(0)
  })

  it('keeps a chatty client open', async () => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, { target: upstream.url, clientIdleTimeout: 150 })
    const client = await wsConnect(server.url)

    for (let i = 0; i < 10; i++) {
      client.send(`ping ${i}`)
      await sleep(50)
    }

    expect(client.isOpen).toBe(true)
    await waitFor(() => client.messages.length === 10, { label: 'echoes' })
    expect(upstream.connections).toBe(1)
  })
})
