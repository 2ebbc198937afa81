/**
 * A slot is given back however the connection ends: client close, client TCP reset, upstream
 * close, upstream drop, upstream process killed, the proxy's own endings (idle, lifetime,
 * closeMatching, closeAll, drainAll, connect timeout, buffer limit, setup failure), and
 * upstream-first failures. Every case holds all three caps at 1: while open, the counts are
 * `{ 1, 1, 1 }` and a second upgrade is refused; after the ending they are back to 0 and the next
 * client is admitted (and relayed).
 */
import type { WebSocketProxy, WebSocketProxyOptions } from '../../src/core/types'
import type { CrosswsLine, TestClient, Upstream } from '../helpers'
import { afterEach, describe, expect, it } from 'vitest'
import { cleanup, CROSSWS_LINES, rawUpgrade, refusedUrl, startHangingUpstream, startUpstream, wsConnect } from '../helpers'
import { startUpstreamProcess } from '../faults/harness'
import { echo, expectRefused, limitedProxy, limitsOf, resetClient, startUpgrade, waitLimits, ZERO } from './harness'

afterEach(() => cleanup())

const CAPS = { connections: 1, perIp: 1, perUser: 1 }
const ONE = { connections: 1, addresses: 1, users: 1 }

/**
 * The proxy of one case: every client is the user `alice`. On crossws 0.4 the client address is
 * given as `request.context.clientAddress` (its node adapter shows `upgrade` no socket address,
 * see caps.test.ts "perIp"), so that the address count is exercised on both lines.
 */
async function rig(line: CrosswsLine, options: Omit<WebSocketProxyOptions, 'limits'>) {
  return limitedProxy(line, { ...options, limits: CAPS }, {
    user: () => ({ id: 'alice' }),
    clientAddress: line === '0.4' ? () => '127.0.0.1' : undefined,
  })
}

/** The counts are back to 0, and the next client gets in and is relayed. */
async function expectFreed(proxy: WebSocketProxy, url: string, label: string): Promise<TestClient> {
  await waitLimits(proxy, ZERO, label, 3_000)
  expect(proxy.stats().open).toBe(0)
  const next = await wsConnect(url)
  await echo(next, `after ${label}`)
  expect(limitsOf(proxy)).toEqual(ONE)
  return next
}

interface Case {
  name: string
  options?: Omit<WebSocketProxyOptions, 'limits' | 'target'>
  /** Ends the open connection; resolves once the ending is under way. */
  end: (ctx: { proxy: WebSocketProxy, client: TestClient, upstream: Upstream }) => Promise<unknown>
  /** The close code the client gets (undefined: not checked, e.g. a reset client). */
  clientCode?: number
  cause: string
}

const CASES: Case[] = [
  { name: 'client close', end: ({ client }) => client.close(1000), clientCode: 1000, cause: 'client' },
  { name: 'client TCP reset (resetAndDestroy)', end: async ({ client }) => resetClient(client), cause: 'client' },
  { name: 'upstream close', end: async ({ upstream }) => upstream.connection().close(4000, 'bye'), clientCode: 4000, cause: 'upstream' },
  { name: 'upstream drops its TCP connection', end: async ({ upstream }) => upstream.connection().terminate(), clientCode: 1011, cause: 'upstream' },
  { name: 'client idle timeout', options: { clientIdleTimeout: 150 }, end: async () => {}, clientCode: 1001, cause: 'client-idle' },
  { name: 'maxLifetime', options: { maxLifetime: 150 }, end: async () => {}, clientCode: 1001, cause: 'lifetime' },
  { name: 'closeMatching', end: async ({ proxy }) => expect(proxy.closeMatching(() => true)).toBe(1), clientCode: 1008, cause: 'revoked' },
  { name: 'closeAll', end: ({ proxy }) => proxy.closeAll(1001, 'bye', 1_000), clientCode: 1001, cause: 'shutdown' },
]

describe.each(CROSSWS_LINES)('slots come back however a connection ends (crossws %s)', (line) => {
  for (const c of CASES) {
    it(c.name, async () => {
      const upstream = await startUpstream()
      const { proxy, server } = await rig(line, { target: upstream.url, ...c.options })
      const client = await wsConnect(server.url)
      await echo(client, 'hello')
      expect(limitsOf(proxy)).toEqual(ONE)
      await expectRefused(server.url, 'connections', upstream)
      await c.end({ proxy, client, upstream })
      const closed = await client.closed
      if (c.clientCode !== undefined) expect(closed.code).toBe(c.clientCode)
      await expectFreed(proxy, server.url, c.name)
      expect(proxy.stats().closed[c.cause as 'client']).toBe(1)
    })
  }

  it('upstream process killed (SIGKILL)', async () => {
    const child = await startUpstreamProcess()
    const upstream = await startUpstream()
    let dials = 0
    const { proxy, server } = await rig(line, { target: () => (dials++ === 0 ? child.url : upstream.url) })
    const client = await wsConnect(server.url)
    await echo(client, 'hello')
    expect(limitsOf(proxy)).toEqual(ONE)
    child.signal('SIGKILL')
    await child.exited
    // The upstream's TCP connection died without a close frame (1006): the client gets 1011.
    expect((await client.closed).code).toBe(1011)
    await expectFreed(proxy, server.url, 'upstream killed')
  })

  it('drainAll', async () => {
    const upstream = await startUpstream()
    const { proxy, server } = await rig(line, { target: upstream.url })
    const clients = [await wsConnect(server.url)]
    expect(limitsOf(proxy)).toEqual(ONE)
    await proxy.drainAll({ spread: 0 })
    expect((await clients[0]!.closed).code).toBe(1001)
    await waitLimits(proxy, ZERO, 'drainAll')
    // Draining refuses everyone with 503: no slot is taken by those.
    expect((await rawUpgrade(server.url)).status).toBe(503)
    expect(limitsOf(proxy)).toEqual(ZERO)
  })

  it('the client leaves while its upstream is still connecting', async () => {
    const hanging = await startHangingUpstream()
    const upstream = await startUpstream()
    let dials = 0
    const { proxy, server } = await rig(line, { target: () => (dials++ === 0 ? hanging.url : upstream.url) })
    const client = await wsConnect(server.url)
    expect(limitsOf(proxy)).toEqual(ONE)
    resetClient(client)
    await expectFreed(proxy, server.url, 'client left while connecting')
  })

  it('connect timeout (the client was accepted, the upstream never answered)', async () => {
    const hanging = await startHangingUpstream()
    const upstream = await startUpstream()
    let dials = 0
    const { proxy, server } = await rig(line, { target: () => (dials++ === 0 ? hanging.url : upstream.url), connectTimeout: 200 })
    const client = await wsConnect(server.url)
    expect((await client.closed).code).toBe(1011)
    await expectFreed(proxy, server.url, 'connect timeout')
    expect(proxy.stats().closed['connect-timeout']).toBe(1)
  })

  it('upstream refused the dial (default mode: the client gets 1011)', async () => {
    const refused = await refusedUrl()
    const upstream = await startUpstream()
    let dials = 0
    const { proxy, server } = await rig(line, { target: () => (dials++ === 0 ? refused : upstream.url) })
    const client = await wsConnect(server.url)
    expect((await client.closed).code).toBe(1011)
    await expectFreed(proxy, server.url, 'upstream refused')
  })

  it('buffer limit while connecting and a resolver that throws', async () => {
    const hanging = await startHangingUpstream()
    const upstream = await startUpstream()
    let dials = 0
    const { proxy, server } = await rig(line, {
      target: () => {
        const n = dials++
        if (n === 0) return hanging.url
        if (n === 1) throw new Error('no target for you')
        return upstream.url
      },
      maxBufferSize: 1_000,
    })
    const first = await wsConnect(server.url)
    first.send(Buffer.alloc(2_000))
    expect((await first.closed).code).toBe(1009)
    await waitLimits(proxy, ZERO, 'buffer limit')
    const second = await wsConnect(server.url)
    expect((await second.closed).code).toBe(1011)
    await expectFreed(proxy, server.url, 'setup failed')
    expect(proxy.stats().closed).toMatchObject({ 'buffer-limit': 1, 'setup-failed': 1 })
  })
})

describe.each(CROSSWS_LINES)('upstream-first: slots come back when the handshake fails (crossws %s)', (line) => {
  it('upstream refused (502), answered 403 (passed through), timed out (504); then a success, closed by a client reset', async () => {
    const refused = await refusedUrl()
    const hanging = await startHangingUpstream()
    let rejectNext = false
    const upstream = await startUpstream({ reject: () => (rejectNext ? 403 : undefined) })
    const targets = [refused, upstream.url, hanging.url]
    const { proxy, server } = await rig(line, { target: () => targets.shift() ?? upstream.url, upstreamFirst: true, connectTimeout: 300 })

    expect((await rawUpgrade(server.url)).status).toBe(502)
    await waitLimits(proxy, ZERO, 'after the 502')
    rejectNext = true
    expect((await rawUpgrade(server.url)).status).toBe(403)
    rejectNext = false
    await waitLimits(proxy, ZERO, 'after the 403')
    expect((await rawUpgrade(server.url)).status).toBe(504)
    await waitLimits(proxy, ZERO, 'after the 504')
    expect(proxy.stats().refused).toEqual({ 403: 1, 502: 1, 504: 1 })

    const client = await wsConnect(server.url)
    await echo(client, 'upstream first')
    expect(limitsOf(proxy)).toEqual(ONE)
    await expectRefused(server.url, 'connections', upstream)
    resetClient(client)
    await expectFreed(proxy, server.url, 'upstream-first client reset')
  })

  it('the client resets while the upstream is being dialled: the slot comes back (0.3: at once; 0.4: at the adoption timeout)', async () => {
    const upstream = await startUpstream({ handshakeDelay: 150 })
    const { proxy, server, counts } = await rig(line, { target: upstream.url, upstreamFirst: true, connectTimeout: 400 })
    const pending = startUpgrade(server.url)
    const upgrading = Date.now()
    // The upgrade is in `upgrade`, dialling: the slot is taken.
    await waitLimits(proxy, ONE, 'while dialling')
    pending.socket.resetAndDestroy()
    expect(await pending.answer).toBe('closed')
    await waitLimits(proxy, ZERO, 'after the reset', 2_000)
    const elapsed = Date.now() - upgrading
    expect(counts.opens).toBe(0)
    // 0.3 watches the client's socket; 0.4 shows `upgrade` no socket and relies on the adoption
    // timer (connectTimeout, here 400 ms, started once the upstream opened after 150 ms).
    expect(elapsed).toBeLessThan(line === '0.3' ? 400 : 1_200)
    await expectFreed(proxy, server.url, 'upstream-first reset')
  })
})
