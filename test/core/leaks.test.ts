/**
 * No leaks: a client leaving at any stage releases its upstream (socket and timers); many
 * sequential or concurrent connections end with nothing left and never cross wires.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { CROSSWS_LINES, cleanup, sleep, startHangingUpstream, startUpstream, trackTimers, usesWsCtor, waitFor, wsConnect } from '../helpers'
import { expectEcho, proxied } from './setup'

afterEach(() => cleanup())

/**
 * No socket that carried a handshake is left. Idle sockets are only checked with the `ws`
 * constructor: undici 6 (Node 22's global) re-dials an idle pool socket after an aborted
 * handshake, which the proxy cannot control through the WHATWG API.
 */
function released(upstream: { connections?: number, sockets: number, idleSockets: number }) {
  return (upstream.connections ?? 0) === 0 && upstream.sockets === 0 && (!usesWsCtor || upstream.idleSockets === 0)
}

function seen(upstream: { connections?: number, sockets: number, idleSockets: number }) {
  return { connections: upstream.connections, sockets: upstream.sockets, idleSockets: upstream.idleSockets }
}

describe.each(CROSSWS_LINES)('crossws %s: no leaks', (line) => {
  // A long connect timeout, so a timer the proxy forgets stays visible during the test.
  const connectTimeout = 5_000

  it('a client leaving while its upstream handshake is pending leaves no upstream connection nor timer', async () => {
    const upstream = await startUpstream({ handshakeDelay: 150 })
    const { server } = await proxied(line, { target: upstream.url, connectTimeout })
    const timers = trackTimers()
    const client = await wsConnect(server.url)
    await waitFor(() => upstream.handshakes.length === 1, { label: 'dial started' })

    await client.close(1000)

    await sleep(200) // past the upstream's handshake delay
    await waitFor(() => released(upstream), { label: 'upstream released', describe: () => seen(upstream) })
    await waitFor(() => timers.pending().length === 0, { label: 'timers released', describe: () => timers.pending() })
  })

  it('a client leaving while the upstream never answers releases the upstream socket', async () => {
    const hanging = await startHangingUpstream()
    const { server } = await proxied(line, { target: hanging.url, connectTimeout })
    const timers = trackTimers()
    const client = await wsConnect(server.url)
    await waitFor(() => hanging.sockets === 1, { label: 'dial started' })

    await client.close(1000)

    await waitFor(() => released(hanging), { label: 'upstream socket released', describe: () => seen(hanging) })
    await waitFor(() => timers.pending().length === 0, { label: 'timers released', describe: () => timers.pending() })
  })

  it('a client leaving while an async resolver is pending never gets dialled', async () => {
    const upstream = await startUpstream()
    let resolveTarget!: (url: string) => void
    let calls = 0
    const { server } = await proxied(line, {
      connectTimeout,
      target: () => {
        calls++
        return new Promise<string>((resolve) => { resolveTarget = resolve })
      },
    })
    const timers = trackTimers()
    const client = await wsConnect(server.url)
    await waitFor(() => calls === 1, { label: 'resolver called' })

    await client.close(1000)
    await sleep(20)
    resolveTarget(upstream.url)

    await sleep(100)
    expect(upstream.handshakes).toHaveLength(0)
    expect(upstream.sockets + upstream.idleSockets).toBe(0)
    await waitFor(() => timers.pending().length === 0, { label: 'timers released', describe: () => timers.pending() })
  })

  it('an open connection releases its timers once closed', async () => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, { target: upstream.url, connectTimeout, clientIdleTimeout: 5_000 })
    const timers = trackTimers()
    const client = await wsConnect(server.url)
    await expectEcho(client, 'hi')

    await client.close(1000)

    await waitFor(() => upstream.connections === 0, { label: 'upstream released' })
    await waitFor(() => timers.pending().length === 0, { label: 'timers released', describe: () => timers.pending() })
  })

  it('500 sequential open/close cycles end with zero upstream connections', async () => {
    // A short handshake delay makes every odd cycle leave while its upstream is still connecting.
    const upstream = await startUpstream({ handshakeDelay: 3 })
    const { proxy, server } = await proxied(line, { target: upstream.url })
    const started = Date.now()

    for (let i = 0; i < 500; i++) {
      const client = await wsConnect(server.url)
      if (i % 2 === 0) await expectEcho(client, `cycle ${i}`)
      await client.close(1000)
    }

    await waitFor(() => released(upstream), { timeout: 3_000, label: 'every upstream released', describe: () => seen(upstream) })
    expect(Date.now() - started).toBeLessThan(25_000)
    await waitFor(() => proxy.stats().open === 0, { label: 'stats().open back to 0', describe: () => proxy.stats() })
  })

  it('200 concurrent clients each get only their own echoes', async () => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, { target: upstream.url })

    const clients = await Promise.all(Array.from({ length: 200 }, () => wsConnect(server.url, { timeout: 5_000 })))
    for (let round = 0; round < 3; round++) {
      clients.forEach((client, i) => client.send(`client ${i} round ${round}`))
    }
    await waitFor(() => clients.every(c => c.messages.length >= 3), {
      timeout: 5_000,
      label: '3 echoes per client',
      describe: () => clients.filter(c => c.messages.length < 3).length,
    })
    await sleep(20)

    clients.forEach((client, i) => {
      expect(client.messages.map(m => m.text)).toEqual([0, 1, 2].map(round => `client ${i} round ${round}`))
    })
    expect(upstream.connections).toBe(200)
    await Promise.all(clients.map(client => client.close(1000)))
    await waitFor(() => upstream.connections === 0, { timeout: 3_000, label: 'every upstream released' })
  })
})
