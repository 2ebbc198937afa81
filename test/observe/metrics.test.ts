/**
 * The metrics in process: `renderMetrics()` after known traffic through routes mounted as the
 * Nitro module mounts them, read with a real Prometheus text parser (and a strict grammar
 * check); label escaping; who may read the endpoint (`canReadMetrics`, and the h3 handler on a
 * loopback server and with a non-loopback socket address that is never dialled).
 */
import { IncomingMessage, ServerResponse, createServer } from 'node:http'
import { Socket } from 'node:net'
import { createApp, createEvent, createRouter, toNodeListener } from 'h3'
import { afterEach, describe, expect, it } from 'vitest'
import type { WebSocketProxyStats } from '../../src/core/types'
import { canReadMetrics, isLoopbackAddress, METRICS_CONTENT_TYPE, renderMetrics, safeEqual } from '../../src/runtime/metrics'
import { defineWsProxyMetricsHandler } from '../../src/runtime/metrics-handler'
import { observations, routeObservations } from '../../src/runtime/observe'
import { cleanup, rawUpgrade, refusedUrl, sleep, startUpstream, track, waitFor, wsConnect } from '../helpers'
import { captureAccessLog, mountRoute, routeUrl } from './harness'
import { checkExposition, officialSamples, type Sample, scrape } from './prometheus'

afterEach(() => cleanup())

/** The official Prometheus Python client's parser (where installed) reads the same samples. */
function expectOfficialParserAgrees(text: string): void {
  const official = officialSamples(text)
  if (!official) {
    console.warn('[metrics.test] python3-prometheus-client is not installed: the official parser cross-check is skipped')
    return
  }
  const key = (s: Sample) => `${s.name}${JSON.stringify(Object.entries(s.labels).sort())} ${s.value}`
  expect(official.map(key).sort()).toEqual(scrape(text).samples.map(key).sort())
  // Its families carry our types.
  expect(new Set(official.map(s => s.type))).toEqual(new Set(['gauge', 'counter', 'histogram']))
}

const P = 'nitro_ws_proxy_'

describe('renderMetrics() after known traffic', () => {
  it('counts connections, closes by cause, bytes and messages (live), refusals by status, per-upstream health and histograms', async () => {
    captureAccessLog()
    const upstream = await startUpstream()
    const down = await refusedUrl()
    // A pool: one live upstream, one refusing (taken out of service after its failed dial).
    const pool = await mountRoute({ target: [`${upstream.url}/a/**`, `${down}/b/**`], balance: 'round-robin' })
    const single = await mountRoute({ target: `${upstream.url}/**`, limits: { connections: 2 } })
    const authed = await mountRoute({ target: `${upstream.url}/**` }, {
      auth: { check: async (request: Request) => request.headers.get('x-pass') === 'yes' ? { user: { id: 1 } } : new Response('Unauthorized', { status: 401 }) },
    })

    // single: 2 connections (the cap), a third refused 429; 3 × 'hello' each way on one, live.
    const a = await wsConnect(routeUrl(single, '/a'))
    const b = await wsConnect(routeUrl(single, '/b'))
    expect((await rawUpgrade(routeUrl(single, '/c'))).status).toBe(429)
    expect((await rawUpgrade(routeUrl(single, '/%2e%2e/x'))).status).toBe(400)
    for (let i = 0; i < 3; i++) {
      a.send('hello')
      await a.next()
    }
    let m = scrape(renderMetrics())
    const r = { route: single.route }
    expect(m.value(`${P}connections_open`, r)).toBe(2)
    expect(m.value(`${P}connections_total`, r)).toBe(2)
    // Live: counted while the connection is open.
    expect(m.value(`${P}bytes_total`, { ...r, direction: 'to_upstream' })).toBe(15)
    expect(m.value(`${P}bytes_total`, { ...r, direction: 'to_client' })).toBe(15)
    expect(m.value(`${P}messages_total`, { ...r, direction: 'to_upstream' })).toBe(3)
    expect(m.value(`${P}messages_total`, { ...r, direction: 'to_client' })).toBe(3)
    expect(m.value(`${P}limited_total`, { ...r, limit: 'connections' })).toBe(1)

    await a.close(1000)
    b.send('close:4000:bye')
    await b.closed
    // authed: one refused (401), one accepted and closed by the client.
    expect((await rawUpgrade(routeUrl(authed, '/x'))).status).toBe(401)
    expect((await rawUpgrade(routeUrl(authed, '/x'))).status).toBe(401)
    const c = await wsConnect(routeUrl(authed, '/x'), { headers: { 'x-pass': 'yes' } })
    await c.close(1000)
    // pool: round-robin; the dial to the refusing entry fails over to the live one.
    const poolClients = await Promise.all(Array.from({ length: 4 }, (_, i) => wsConnect(routeUrl(pool, `/p${i}`))))
    for (const client of poolClients) {
      client.send('x')
      await client.next()
    }
    await Promise.all(poolClients.map(client => client.close(1000)))
    await waitFor(() => [single, authed, pool].every(x => x.proxy.stats().open === 0), { label: 'all closed' })
    await sleep(20)

    m = scrape(renderMetrics())
    expect(m.value(`${P}connections_open`, r)).toBe(0)
    expect(m.value(`${P}connections_closed_total`, { ...r, cause: 'client' })).toBe(1)
    expect(m.value(`${P}connections_closed_total`, { ...r, cause: 'upstream' })).toBe(1)
    expect(m.value(`${P}connections_closed_total`, { ...r, cause: 'shutdown' })).toBe(0)
    // Every cause is present (zero until it happens): rate() works from the first scrape.
    expect(m.series(`${P}connections_closed_total`).filter(s => s.labels.route === single.route)).toHaveLength(14)
    expect(m.value(`${P}bytes_total`, { ...r, direction: 'to_upstream' })).toBe(15 + 'close:4000:bye'.length)
    expect(m.value(`${P}upgrades_refused_total`, { ...r, status: '429' })).toBe(1)
    expect(m.value(`${P}upgrades_refused_total`, { ...r, status: '400' })).toBe(1)
    expect(m.value(`${P}upgrades_refused_total`, { route: authed.route, status: '401' })).toBe(2)
    expect(m.value(`${P}connections_total`, { route: authed.route })).toBe(1)

    // Per upstream (origin only): the live one took every pool connection, the other failed.
    const p = { route: pool.route }
    expect(m.value(`${P}connections_total`, p)).toBe(4)
    expect(m.value(`${P}upstream_connections_total`, { ...p, upstream: upstream.url })).toBe(4)
    expect(m.value(`${P}upstream_connections_open`, { ...p, upstream: upstream.url })).toBe(0)
    expect(m.value(`${P}upstream_healthy`, { ...p, upstream: upstream.url })).toBe(1)
    expect(m.value(`${P}upstream_failed_dials_total`, { ...p, upstream: down })).toBeGreaterThanOrEqual(1)
    expect(m.value(`${P}upstream_healthy`, { ...p, upstream: down })).toBe(0)
    expect(m.value(`${P}upstream_connections_total`, { ...p, upstream: down })).toBe(0)
    const handshake = m.histogram(`${P}upstream_handshake_seconds`, { ...p, upstream: upstream.url })!
    expect(handshake.count).toBe(4)
    expect(handshake.buckets['+Inf']).toBe(4)
    expect(handshake.sum).toBeGreaterThan(0)
    expect(handshake.buckets['10']).toBe(4)
    const duration = m.histogram(`${P}connection_duration_seconds`, { ...p, upstream: upstream.url })!
    expect(duration.count).toBe(4)
    expect(m.histogram(`${P}upstream_handshake_seconds`, { ...p, upstream: down })!.count).toBe(0)
    expect(m.histogram(`${P}connection_duration_seconds`, { route: single.route, upstream: upstream.url })!.count).toBe(2)
    // The single route's 429 and 400 never dialled: no duration series with upstream="".
    expect(m.histogram(`${P}connection_duration_seconds`, { route: single.route, upstream: '' })).toBeUndefined()

    // Nothing but route, upstream origin and fixed words in labels.
    const text = renderMetrics()
    expect(text).not.toMatch(/\/a\/p\d|\/b\/|x-pass/)
    const labelNames = new Set(scrape(text).samples.flatMap(s => Object.keys(s.labels)))
    expect([...labelNames].sort()).toEqual(['cause', 'direction', 'le', 'limit', 'route', 'status', 'upstream'])
    expectOfficialParserAgrees(text)
  })

  it('counts 404s on unmatched paths under route="" and a route whose setup failed under its key', () => {
    const text = renderMetrics({ proxies: new Map(), observations: new Map([['/broken/**', { ...routeObservations('/broken/**'), refused: { 500: 3 } }]]), unmatchedRefusals: { 404: 2 } })
    observations.delete('/broken/**')
    const m = scrape(text)
    expect(m.value(`${P}upgrades_refused_total`, { route: '', status: '404' })).toBe(2)
    expect(m.value(`${P}upgrades_refused_total`, { route: '/broken/**', status: '500' })).toBe(3)
    expect(m.series(`${P}connections_open`)).toEqual([])
  })

  it('escapes label values as the format says, and an empty server is a valid exposition', () => {
    const route = '/we"ird\\path\nx/**'
    const stats = {
      open: 1,
      opened: 2,
      closed: { client: 1 },
      messages: { toUpstream: 0, toClient: 0 },
      bytes: { toUpstream: 0, toClient: 0 },
      upstreams: { 'ws+unix:/tmp/a "b".sock': { open: 0, opened: 1, failedDials: 0, healthy: true } },
      refused: {},
      limited: { connections: 0, perIp: 0, perUser: 0, messageRate: 0, byteRate: 0 },
    } as unknown as WebSocketProxyStats
    const text = renderMetrics({ proxies: new Map([[route, { stats: () => stats }]]), observations: new Map(), unmatchedRefusals: {} })
    expect(text).toContain('route="/we\\"ird\\\\path\\nx/**"')
    const m = scrape(text)
    expectOfficialParserAgrees(text)
    expect(m.value(`${P}connections_open`, { route })).toBe(1)
    expect(m.value(`${P}upstream_connections_total`, { route, upstream: 'ws+unix:/tmp/a "b".sock' })).toBe(1)

    const empty = renderMetrics({ proxies: new Map(), observations: new Map(), unmatchedRefusals: {} })
    checkExposition(empty)
    expect(empty.split('\n').filter(line => line && !line.startsWith('#'))).toEqual([])
    expect(empty.match(/^# TYPE /gm)).toHaveLength(13)
  })
})

describe('who may read the metrics', () => {
  const req = (over: Partial<Parameters<typeof canReadMetrics>[0]> = {}) => ({ method: 'GET', remoteAddress: '127.0.0.1', authorization: undefined, forwarded: false, ...over })

  it('without a token: loopback sockets that no proxy relayed', () => {
    for (const address of ['127.0.0.1', '127.0.0.2', '127.255.255.254', '::1', '::ffff:127.0.0.1', '::FFFF:127.1.2.3', '::ffff:7f00:1', '[::1]']) {
      expect([address, canReadMetrics(req({ remoteAddress: address }), undefined)]).toEqual([address, true])
    }
    for (const address of [undefined, '', '10.0.0.1', '192.168.1.5', '203.0.113.9', '128.0.0.1', '1127.0.0.1', '127.0.0.256', '::2', '::ffff:10.0.0.1', 'fe80::1', '::ffff:8f00:1', 'localhost']) {
      expect([address, canReadMetrics(req({ remoteAddress: address }), undefined)]).toEqual([address, false])
    }
    // Relayed by a proxy on the same host: the loopback socket is not the client.
    expect(canReadMetrics(req({ forwarded: true }), undefined)).toBe(false)
    // An empty token is no token.
    expect(canReadMetrics(req(), '')).toBe(true)
    expect(canReadMetrics(req({ method: 'POST' }), undefined)).toBe(false)
    expect(canReadMetrics(req({ method: 'HEAD' }), undefined)).toBe(true)
  })

  it('with a token: exactly "Bearer <token>", from anywhere, loopback or not', () => {
    const token = 's3cret-Token_1'
    expect(canReadMetrics(req({ authorization: `Bearer ${token}`, remoteAddress: '203.0.113.9', forwarded: true }), token)).toBe(true)
    expect(canReadMetrics(req({ authorization: `bearer ${token}` }), token)).toBe(true)
    for (const authorization of [undefined, '', 'Bearer', `Bearer ${token}x`, `Bearer ${token.slice(0, -1)}`, `Basic ${token}`, token, `Bearer  ${token.toUpperCase()}`]) {
      expect([authorization, canReadMetrics(req({ authorization }), token)]).toEqual([authorization, false])
    }
    expect(safeEqual('abc', 'abc')).toBe(true)
    expect(safeEqual('abd', 'abc')).toBe(false)
    expect(safeEqual('ab', 'abc')).toBe(false)
    expect(safeEqual('abcd', 'abc')).toBe(false)
    expect(safeEqual('', '')).toBe(true)
    expect(isLoopbackAddress('127.0.0.1')).toBe(true)
  })
})

describe('the metrics endpoint handler (h3)', () => {
  async function serve(token: () => unknown) {
    // Mounted as Nitro mounts handlers: a preemptive router (its 404 is what a missing path gets).
    const app = createApp()
    const router = createRouter({ preemptive: true })
    router.use('/_ws-proxy/metrics', defineWsProxyMetricsHandler({ token }))
    app.use(router)
    const server = createServer(toNodeListener(app))
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    track(() => new Promise<void>(resolve => server.close(() => resolve())))
    return `http://127.0.0.1:${(server.address() as { port: number }).port}`
  }

  it('serves loopback clients without a token, with the exposition content type; hides itself otherwise', async () => {
    const base = await serve(() => '')
    const ok = await fetch(`${base}/_ws-proxy/metrics`)
    expect(ok.status).toBe(200)
    expect(ok.headers.get('content-type')).toBe(METRICS_CONTENT_TYPE)
    expect(ok.headers.get('cache-control')).toBe('no-store')
    checkExposition(await ok.text())

    // Through a proxy on this host (x-forwarded-for), and a POST: the same 404 as a missing path.
    const unknown = await fetch(`${base}/_ws-proxy/nothing`)
    const unknownBody = (await unknown.text()).replaceAll('/_ws-proxy/nothing', '<path>')
    for (const init of [{ headers: { 'x-forwarded-for': '127.0.0.1' } }, { headers: { forwarded: 'for=127.0.0.1' } }, { method: 'POST' }] as RequestInit[]) {
      const hidden = await fetch(`${base}/_ws-proxy/metrics`, init)
      expect(hidden.status).toBe(404)
      expect((await hidden.text()).replaceAll('/_ws-proxy/metrics', '<path>')).toBe(unknownBody)
      expect(hidden.headers.get('content-type')).toBe(unknown.headers.get('content-type'))
    }
    const head = await fetch(`${base}/_ws-proxy/metrics`, { method: 'HEAD' })
    expect(head.status).toBe(200)
  })

  it('with a token: only the bearer gets them, loopback or not', async () => {
    let token = 'tok-123'
    const base = await serve(() => token)
    expect((await fetch(`${base}/_ws-proxy/metrics`)).status).toBe(404)
    expect((await fetch(`${base}/_ws-proxy/metrics`, { headers: { authorization: 'Bearer nope' } })).status).toBe(404)
    expect((await fetch(`${base}/_ws-proxy/metrics`, { headers: { authorization: 'Bearer tok-123' } })).status).toBe(200)
    token = ''
    expect((await fetch(`${base}/_ws-proxy/metrics`)).status).toBe(200)
  })

  it('a client on another address (a socket address set by hand, nothing dialled) gets 404; with the token, 200', async () => {
    const handler = defineWsProxyMetricsHandler({ token: () => process.env.TEST_METRICS_TOKEN ?? '' })
    const call = async (headers: Record<string, string> = {}) => {
      const socket = new Socket()
      Object.defineProperty(socket, 'remoteAddress', { value: '203.0.113.9' })
      const request = new IncomingMessage(socket)
      request.method = 'GET'
      request.url = '/_ws-proxy/metrics'
      request.headers = headers
      const response = new ServerResponse(request)
      try {
        const body = await handler(createEvent(request, response))
        return { status: 200, body: String(body), type: response.getHeader('content-type') }
      }
      catch (error) {
        return { status: (error as { statusCode: number }).statusCode, body: (error as Error).message }
      }
      finally {
        socket.destroy()
      }
    }
    expect(await call()).toEqual({ status: 404, body: 'Cannot find any route matching /_ws-proxy/metrics.' })
    process.env.TEST_METRICS_TOKEN = 'remote-token'
    try {
      expect((await call()).status).toBe(404)
      const ok = await call({ authorization: 'Bearer remote-token' })
      expect(ok.status).toBe(200)
      expect(ok.type).toBe(METRICS_CONTENT_TYPE)
      checkExposition(ok.body)
    }
    finally {
      delete process.env.TEST_METRICS_TOKEN
    }
  })
})
