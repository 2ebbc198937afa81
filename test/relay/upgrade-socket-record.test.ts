/**
 * crossws 0.4's Node adapter called as Nitro 3's dev worker calls it,
 * `handleUpgrade(req, socket, head)` with no web request (the test helpers' `startProxy` does
 * the same): the upgrade request it builds keeps no way to the client's socket. An
 * `upstreamFirst` dial then outlives a client that left before its 101 until the adoption timeout
 * (`connectTimeout`); with the Nitro 3 dev runtime's record (runtime/dev-upgrade-sockets.ts,
 * read by the fence) it ends with the client. One process-wide record, so the order matters:
 * first without it, then with it.
 */
import { connect } from 'node:net'
import { randomBytes } from 'node:crypto'
import { afterAll, describe, expect, it } from 'vitest'
import { createWebSocketProxy } from '../../src/index'
import { recordDevUpgradeSockets } from '../../src/runtime/dev-upgrade-sockets'
import { cleanup, ctorOption, sleep, startProxy, startUpstream, type Upstream, waitFor, withTimeout } from '../helpers'

/** Send a whole upgrade request for `path`, then reset (RST) once `upstream` saw the dial. */
function resetAfterDial(port: number, path: string, upstream: Upstream): Promise<string> {
  const before = upstream.handshakes.length
  return withTimeout(new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let received = ''
    socket.on('data', (chunk) => { received += chunk.toString('latin1') })
    socket.on('error', reject)
    socket.on('connect', () => {
      socket.write([
        `GET ${path} HTTP/1.1`,
        `Host: 127.0.0.1:${port}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
        'Sec-WebSocket-Version: 13',
        '',
        '',
      ].join('\r\n'))
      waitFor(() => upstream.handshakes.length > before, { timeout: 3000, label: 'the dialled upstream handshake' }).then(() => {
        socket.resetAndDestroy()
        resolve(received)
      }, reject)
    })
  }), 5000, `reset of an upgrade on ${path}`)
}

describe('crossws 0.4 without a web request: upstream-first dial and a client gone before its 101', () => {
  afterAll(() => cleanup())

  // The upstream answers after 300 ms; the proxy waits up to 2 s for the client to be adopted.
  async function setup() {
    const slow = await startUpstream({ handshakeDelay: 300 })
    const proxy = createWebSocketProxy({ target: `${slow.url}/**`, upstreamFirst: true, connectTimeout: 2000, ...ctorOption() })
    const server = await startProxy(proxy, { crossws: '0.4' })
    return { slow, proxy, server }
  }

  it('without the record: the dialled upstream is held until the adoption timeout', async () => {
    const { slow, proxy, server } = await setup()
    expect(await resetAfterDial(server.port, '/held', slow)).toBe('')
    await sleep(800)
    expect(slow.connections, 'upstream open after its 300 ms handshake, client long gone').toBe(1)
    await waitFor(() => slow.connections === 0, { timeout: 4000, label: 'upstream closed at the adoption timeout' })
    await waitFor(() => proxy.stats().open === 0, { timeout: 1000, label: 'connection released' })
  }, 10_000)

  it('with the record: the dial ends with the client', async () => {
    recordDevUpgradeSockets()
    recordDevUpgradeSockets() // idempotent
    const { slow, proxy, server } = await setup()
    expect(await resetAfterDial(server.port, '/ended', slow)).toBe('')
    await sleep(800)
    expect(slow.connections, 'no upstream left open once its handshake completed').toBe(0)
    expect(proxy.stats().open).toBe(0)
  }, 10_000)
})
