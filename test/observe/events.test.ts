/**
 * Connection events in process, through `defineWsProxyHandler` (what the Nitro module generates)
 * with the real core on crossws 0.3: every fault the relay handles ends each connection with
 * exactly one `ws-proxy:close` hook call and exactly one access log line; the hook fields; the
 * `nitro-ws-proxy:open` / `:close` diagnostics channels carry the same records.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { afterEach, describe, expect, it } from 'vitest'
import type { WsProxyCloseEvent, WsProxyOpenEvent } from '../../src/runtime/observe'
import { useWsProxy } from '../../src/runtime/use-ws-proxy'
import { cleanup, rawUpgrade, refusedUrl, sleep, startHangingUpstream, startUpstream, type TestClient, track, waitFor, withTimeout, wsConnect } from '../helpers'
import { rawWebSocket, startUpstreamProcess } from '../faults/harness'
import { captureAccessLog, type MountedRoute, mountRoute, parseTextLine, routeUrl } from './harness'

afterEach(() => cleanup())

/** Wait until every connection of `mounted` ended and its close events arrived (bounded). */
async function allEnded(mounted: MountedRoute, closes: number, timeout = 3_000): Promise<void> {
  await waitFor(() => mounted.proxy.stats().open === 0 && mounted.closes().length >= closes, {
    timeout,
    label: `${closes} close events on ${mounted.route}`,
    describe: () => ({ open: mounted.proxy.stats().open, closes: mounted.closes().map(c => c.cause) }),
  })
  // Nothing comes twice: a late upstream close or client error after the end adds no record.
  await sleep(150)
}

/**
 * The invariant: `connections` accepted connections, each with exactly one close event and
 * exactly one access log line, with the same ids; `stats().closed` counts the same causes.
 */
function expectOnePerConnection(mounted: MountedRoute, log: ReturnType<typeof captureAccessLog>, connections: number, cause: string) {
  const closes = mounted.closes()
  const closeIds = closes.map(c => c.id)
  expect(new Set(closeIds).size).toBe(closeIds.length)
  expect(closes).toHaveLength(connections)
  const lines = log.lines.filter(line => parseTextLine(line).route === mounted.route)
  expect(lines).toHaveLength(connections)
  const counts = new Map<string, number>()
  for (const line of lines) counts.set(parseTextLine(line).id!, (counts.get(parseTextLine(line).id!) ?? 0) + 1)
  expect([...counts.values()].every(n => n === 1)).toBe(true)
  expect([...counts.keys()].sort()).toEqual([...closeIds].sort())
  expect(closes.map(c => c.cause)).toEqual(Array(connections).fill(cause))
  for (const line of lines) expect(parseTextLine(line).cause).toBe(cause)
  expect(mounted.proxy.stats().opened).toBe(connections)
  expect(mounted.proxy.stats().closed[cause as keyof ReturnType<typeof mounted.proxy.stats>['closed']]).toBe(connections)
}

async function openClients(mounted: MountedRoute, n: number, path = '/x'): Promise<TestClient[]> {
  return Promise.all(Array.from({ length: n }, () => wsConnect(routeUrl(mounted, path))))
}

describe('every fault the relay handles: one close event and one access log line per connection', () => {
  it('upstream killed mid-stream (SIGKILL)', async () => {
    const log = captureAccessLog()
    const upstream = await startUpstreamProcess()
    const mounted = await mountRoute({ target: `${upstream.url}/**` })
    const clients = await openClients(mounted, 3)
    for (const client of clients) client.send('stream')
    await waitFor(() => clients.every(c => c.messages.length >= 10), { timeout: 3_000, label: 'streams flowing' })
    upstream.signal('SIGKILL')
    const closed = await withTimeout(Promise.all(clients.map(c => c.closed)), 3_000, 'client closes')
    expect(closed.map(c => c.code)).toEqual([1011, 1011, 1011])
    await allEnded(mounted, 3)
    const causes = new Set(mounted.closes().map(c => c.cause))
    // A killed process resets the socket (upstream-error) or its kernel closes it (upstream).
    expect([...causes].every(c => c === 'upstream-error' || c === 'upstream')).toBe(true)
    expectOnePerConnection(mounted, log, 3, [...causes][0]!)
  }, 15_000)

  it('upstream frozen (SIGSTOP), found by the heartbeat', async () => {
    const log = captureAccessLog()
    const upstream = await startUpstreamProcess()
    const mounted = await mountRoute({ target: `${upstream.url}/**`, heartbeatInterval: 100, heartbeatTimeout: 100 })
    const clients = await openClients(mounted, 2)
    for (const client of clients) {
      client.send('hi')
      await client.next()
    }
    upstream.signal('SIGSTOP')
    const closed = await withTimeout(Promise.all(clients.map(c => c.closed)), 3_000, 'client closes')
    expect(closed.map(c => `${c.code} ${c.reason}`)).toEqual(Array(2).fill('1011 Upstream heartbeat timeout'))
    await allEnded(mounted, 2)
    upstream.signal('SIGCONT')
    await sleep(100)
    expectOnePerConnection(mounted, log, 2, 'upstream-heartbeat')
  }, 15_000)

  it('connect timeout', async () => {
    const log = captureAccessLog()
    const hanging = await startHangingUpstream()
    const mounted = await mountRoute({ target: `${hanging.url}/**`, connectTimeout: 100 })
    const clients = await openClients(mounted, 3)
    const closed = await withTimeout(Promise.all(clients.map(c => c.closed)), 3_000, 'client closes')
    expect(closed.map(c => c.code)).toEqual([1011, 1011, 1011])
    await allEnded(mounted, 3)
    expectOnePerConnection(mounted, log, 3, 'connect-timeout')
    // Never opened: no open event, and the close says so (no handshake time, 1006 upstream leg).
    expect(mounted.opens()).toHaveLength(0)
    expect(mounted.closes()[0]!.handshakeMs).toBeUndefined()
  })

  it('buffer limit while the upstream connects', async () => {
    const log = captureAccessLog()
    const hanging = await startHangingUpstream()
    const mounted = await mountRoute({ target: `${hanging.url}/**`, connectTimeout: 5_000, maxBufferSize: 100 })
    const clients = await openClients(mounted, 2)
    for (const client of clients) client.send(Buffer.alloc(200), true)
    const closed = await withTimeout(Promise.all(clients.map(c => c.closed)), 3_000, 'client closes')
    expect(closed.map(c => c.code)).toEqual([1009, 1009])
    await allEnded(mounted, 2)
    expectOnePerConnection(mounted, log, 2, 'buffer-limit')
  })

  it('client idle', async () => {
    const log = captureAccessLog()
    const upstream = await startUpstream()
    const mounted = await mountRoute({ target: `${upstream.url}/**`, clientIdleTimeout: 150 })
    const clients = await openClients(mounted, 2)
    const closed = await withTimeout(Promise.all(clients.map(c => c.closed)), 3_000, 'client closes')
    expect(closed.map(c => c.code)).toEqual([1001, 1001])
    await allEnded(mounted, 2)
    expectOnePerConnection(mounted, log, 2, 'client-idle')
  })

  it('shutdown drain (and the upgrades it refuses leave no line)', async () => {
    const log = captureAccessLog()
    const upstream = await startUpstream()
    const mounted = await mountRoute({ target: `${upstream.url}/**` })
    const clients = await openClients(mounted, 4)
    for (const client of clients) {
      client.send('ready')
      await client.next()
    }
    const drained = mounted.proxy.drainAll({ spread: 100 })
    const refused = await rawUpgrade(routeUrl(mounted, '/late'))
    expect(refused.status).toBe(503)
    await withTimeout(drained, 3_000, 'drain')
    const closed = await withTimeout(Promise.all(clients.map(c => c.closed)), 3_000, 'client closes')
    expect(closed.map(c => c.code)).toEqual([1001, 1001, 1001, 1001])
    await allEnded(mounted, 4)
    expectOnePerConnection(mounted, log, 4, 'shutdown')
    expect(mounted.proxy.stats().refused[503]).toBe(1)
  })

  it('client reset (TCP RST, no close frame)', async () => {
    const log = captureAccessLog()
    const upstream = await startUpstream()
    const mounted = await mountRoute({ target: `${upstream.url}/**` })
    const raws = await Promise.all([rawWebSocket(routeUrl(mounted, '/a')), rawWebSocket(routeUrl(mounted, '/b'))])
    await waitFor(() => upstream.connections === 2, { label: 'upstream legs open' })
    for (const raw of raws) raw.socket.resetAndDestroy()
    await allEnded(mounted, 2)
    expectOnePerConnection(mounted, log, 2, 'client')
    for (const close of mounted.closes()) expect(close.client.code).toBe(1006)
  })

  it('upstream closes (4000 "bye"), client closes normally, upstream refused', async () => {
    const log = captureAccessLog()
    const upstream = await startUpstream()
    const byUpstream = await mountRoute({ target: `${upstream.url}/**` })
    const a = await wsConnect(routeUrl(byUpstream, '/a'))
    a.send('close:4000:bye')
    expect(await withTimeout(a.closed, 2_000, 'close')).toMatchObject({ code: 4000, reason: 'bye' })
    await allEnded(byUpstream, 1)
    expectOnePerConnection(byUpstream, log, 1, 'upstream')
    expect(byUpstream.closes()[0]).toMatchObject({ source: 'upstream', upstreamClose: { code: 4000, reason: 'bye' }, client: { code: 4000, reason: 'bye' } })

    const byClient = await mountRoute({ target: `${upstream.url}/**` })
    const b = await wsConnect(routeUrl(byClient, '/b'))
    b.send('x')
    await b.next()
    await b.close(4001, 'done')
    await allEnded(byClient, 1)
    expectOnePerConnection(byClient, log, 1, 'client')

    const refused = await mountRoute({ target: `${await refusedUrl()}/**` })
    const c = await wsConnect(routeUrl(refused, '/c'))
    expect((await withTimeout(c.closed, 3_000, 'close')).code).toBe(1011)
    await allEnded(refused, 1)
    expectOnePerConnection(refused, log, 1, 'upstream-error')
  })

  it('revoked, lifetime and rate limit', async () => {
    const log = captureAccessLog()
    const upstream = await startUpstream()
    const revoked = await mountRoute({ target: `${upstream.url}/**` })
    await openClients(revoked, 2)
    await waitFor(() => revoked.opens().length === 2, { label: 'opens' })
    expect(useWsProxy().close({ route: revoked.route })).toBe(2)
    await allEnded(revoked, 2)
    expectOnePerConnection(revoked, log, 2, 'revoked')

    const lifetime = await mountRoute({ target: `${upstream.url}/**`, maxLifetime: 150 })
    await openClients(lifetime, 2)
    await allEnded(lifetime, 2)
    expectOnePerConnection(lifetime, log, 2, 'lifetime')

    const limited = await mountRoute({ target: `${upstream.url}/**`, limits: { messagesPerSecond: 2 } })
    const [client] = await openClients(limited, 1)
    for (let i = 0; i < 10; i++) client!.send(`m${i}`)
    expect((await withTimeout(client!.closed, 2_000, 'close')).code).toBe(1008)
    await allEnded(limited, 1)
    expectOnePerConnection(limited, log, 1, 'rate-limit')
  })
})

describe('ws-proxy:open / ws-proxy:close fields and the diagnostics channels', () => {
  it('carry route, id, client address, upstream without query, user, duration, bytes and messages, each leg\'s close, source and cause', async () => {
    const upstream = await startUpstream()
    const fromChannel: Array<{ name: string, event: unknown }> = []
    const onOpen = (event: unknown) => fromChannel.push({ name: 'ws-proxy:open', event })
    const onClose = (event: unknown) => fromChannel.push({ name: 'ws-proxy:close', event })
    subscribe('nitro-ws-proxy:open', onOpen)
    subscribe('nitro-ws-proxy:close', onClose)
    try {
      const log = captureAccessLog()
      const user = { id: 42, name: 'Ann', email: 'ann@example.com' }
      const mounted = await mountRoute({ target: `${upstream.url}/base/**` }, {
        auth: { check: async () => ({ user, headers: { 'x-user': '42' } }) },
      })
      const startedBefore = Date.now()
      const client = await wsConnect(`${routeUrl(mounted, '/room/7')}?token=secret-token&x=1`)
      const messages = ['hello', 'wörld', 'x'.repeat(300)]
      for (const m of messages) {
        client.send(m)
        expect((await client.next()).text).toBe(m)
      }
      client.send(Buffer.alloc(70_000, 1), true)
      expect((await client.next(3_000)).data.length).toBe(70_000)
      await sleep(50)
      await client.close(4321, 'see you')
      await allEnded(mounted, 1)

      const [open] = mounted.opens()
      const [close] = mounted.closes()
      expect(mounted.hooks.map(h => h.name)).toEqual(['ws-proxy:open', 'ws-proxy:close'])
      expect(open).toMatchObject({
        route: mounted.route,
        clientAddress: '127.0.0.1',
        upstream: `${upstream.url}/base/room/7`,
        user,
      } satisfies Partial<WsProxyOpenEvent>)
      expect(open!.id).toMatch(/\S+/)
      expect(open!.handshakeMs).toBeGreaterThanOrEqual(0)
      expect(open!.startedAt).toBeGreaterThanOrEqual(startedBefore)
      // The upstream did get the query string; the events never show it.
      expect(upstream.handshakes.at(-1)!.url).toBe('/base/room/7?token=secret-token&x=1')
      expect(JSON.stringify(mounted.hooks)).not.toContain('secret-token')

      const payload = messages.reduce((n, m) => n + Buffer.byteLength(m), 0) + 70_000
      expect(close).toMatchObject({
        ...open,
        bytes: { toUpstream: payload, toClient: payload },
        messages: { toUpstream: 4, toClient: 4 },
        client: { code: 4321, reason: 'see you' },
        upstreamClose: { code: 4321, reason: 'see you' },
        source: 'client',
        cause: 'client',
      } satisfies Partial<WsProxyCloseEvent>)
      expect(close!.durationMs).toBeGreaterThanOrEqual(50)
      expect(close!.endedAt - close!.startedAt).toBe(close!.durationMs)
      expect(upstream.closes.at(-1)).toEqual({ code: 4321, reason: 'see you' })

      // The access log: the user's id only, no query string, every field.
      const fields = parseTextLine(log.lines.at(-1)!)
      expect(fields).toMatchObject({
        route: mounted.route,
        id: close!.id,
        client: '127.0.0.1',
        upstream: `${upstream.url}/base/room/7`,
        user: '42',
        bytes_up: String(payload),
        bytes_down: String(payload),
        msgs_up: '4',
        msgs_down: '4',
        client_code: '4321',
        client_reason: 'see you',
        upstream_code: '4321',
        upstream_reason: 'see you',
        ended_by: 'client',
        cause: 'client',
        duration_ms: String(close!.durationMs),
      })
      expect(log.lines.at(-1)).not.toContain('secret-token')
      expect(log.lines.at(-1)).not.toContain('ann@example.com')

      // The diagnostics channels published the very same records, in the same order.
      const mine = fromChannel.filter(c => (c.event as WsProxyOpenEvent).route === mounted.route)
      expect(mine).toEqual(mounted.hooks)
    }
    finally {
      unsubscribe('nitro-ws-proxy:open', onOpen)
      unsubscribe('nitro-ws-proxy:close', onClose)
    }
  })

  it('json access log: one object per line with the same fields', async () => {
    const upstream = await startUpstream()
    const log = captureAccessLog()
    const mounted = await mountRoute({ target: `${upstream.url}/**` }, { accessLog: 'json' })
    const client = await wsConnect(routeUrl(mounted, '/j?q=secret'))
    client.send('abc')
    await client.next()
    await client.close(1000)
    await allEnded(mounted, 1)
    const line = log.lines.at(-1)!
    expect(line).not.toContain('secret')
    expect(JSON.parse(line)).toMatchObject({
      msg: 'nitro-ws-proxy connection closed',
      route: mounted.route,
      id: mounted.closes()[0]!.id,
      client: '127.0.0.1',
      upstream: `${upstream.url}/j`,
      user: '-',
      bytes_up: 3,
      bytes_down: 3,
      msgs_up: 1,
      msgs_down: 1,
      client_code: 1000,
      upstream_code: 1000,
      ended_by: 'client',
      cause: 'client',
    })
  })

  it('a hook that throws or rejects changes nothing for the connection or the log', async () => {
    const upstream = await startUpstream()
    const log = captureAccessLog()
    const errors: unknown[] = []
    const original = console.error
    console.error = (...args: unknown[]) => { errors.push(args) }
    try {
      const { defineWsProxyHandler } = await import('../../src/runtime/handler')
      const { createWebSocketProxy } = await import('../../src/index')
      const { WebSocket } = await import('ws')
      const { startProxy } = await import('../helpers')
      let calls = 0
      const handler = defineWsProxyHandler({
        route: '/throwing/**',
        name: 'route',
        envPrefix: 'X_',
        createWebSocketProxy,
        WebSocket: WebSocket as never,
        runtimeConfig: { wsProxy: { route: { target: `${upstream.url}/**` } } },
        observe: {
          callHook: (name) => {
            calls++
            if (name === 'ws-proxy:open') throw new Error('sync boom')
            return Promise.reject(new Error('async boom'))
          },
          accessLog: 'text',
        },
      })
      const { wsProxies } = await import('../../src/runtime/handler')
      track(() => { wsProxies.delete('/throwing/**') })
      const server = await startProxy((handler as unknown as { __websocket__: object }).__websocket__, { crossws: '0.3' })
      const client = await wsConnect(`${server.url}/throwing/a`)
      client.send('still works')
      expect((await client.next()).text).toBe('still works')
      await client.close(1000)
      await waitFor(() => calls === 2 && log.lines.some(l => l.includes('route=/throwing/**')), { label: 'close hook and line' })
      await sleep(50)
      expect(log.lines.filter(l => l.includes('route=/throwing/**'))).toHaveLength(1)
      expect(errors.length).toBe(2)
    }
    finally {
      console.error = original
    }
  })
})
