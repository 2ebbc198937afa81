/**
 * Metrics, access log and connection events through a real Nitro `node-server` build of
 * test/fixtures/observe-app (module options `metrics: true`, `accessLog: 'json'`), run as a child
 * process on 127.0.0.1 and an ephemeral port:
 *
 * 1. known traffic, then a scrape read with a Prometheus text parser: counts exact, bytes
 *    within the framing overhead, refusals by status (401, 400, 404), per-upstream series;
 * 2. the `ws-proxy:open` / `ws-proxy:close` hooks as a server plugin records them;
 * 3. every fault the relay handles (upstream killed, frozen, connect timeout, buffer limit,
 *    client idle, client reset, upstream close, shutdown) yields exactly one access log line
 *    per connection;
 * 4. who may read the endpoint (loopback, proxied, token), the same 404 as a missing path;
 * 5. the prom-client recipe: the app's registry and ours from one route.
 *
 * Upstreams are in this process (test/helpers) or forked (test/faults). Servers are stopped by pid.
 */
import { createRequire } from 'node:module'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { WsProxyCloseEvent, WsProxyOpenEvent } from '../../src/runtime/observe'
import { generatePassword } from '../auth/helpers'
import { rawWebSocket, startUpstreamProcess, type UpstreamProcess } from '../faults/harness'
import { cleanup, type HangingUpstream, rawUpgrade, sleep, startHangingUpstream, startUpstream, type TestClient, type Upstream, waitFor, withTimeout, wsConnect } from '../helpers'
import { buildNodeServer, type ChildEnv, type ChildServer, fixtureDir, startNodeServer } from '../nitro/harness'
import { scrape } from './prometheus'

const rootDir = fixtureDir('observe-app')
const password = generatePassword()
const P = 'nitro_ws_proxy_'

let echo: Upstream
let poolB: Upstream
let killed: UpstreamProcess
let frozen: UpstreamProcess
let hanging: HangingUpstream
let server: ChildServer | undefined
const extraServers: ChildServer[] = []

function appEnv(extra: ChildEnv = {}): ChildEnv {
  return {
    NITRO_WS_PROXY_ECHO_TARGET: `${echo.url}/**`,
    NITRO_WS_PROXY_POOL_TARGET: JSON.stringify([`${echo.url}/a/**`, `${poolB.url}/b/**`]),
    NITRO_WS_PROXY_PRIVATE_TARGET: `${echo.url}/private/**`,
    NITRO_WS_PROXY_KILL_TARGET: `${killed.url}/**`,
    NITRO_WS_PROXY_FREEZE_TARGET: `${frozen.url}/**`,
    NITRO_WS_PROXY_HANG_TARGET: `${hanging.url}/**`,
    NITRO_WS_PROXY_IDLE_TARGET: `${echo.url}/**`,
    NITRO_WS_PROXY_SESSION_PASSWORD: password,
    NITRO_WS_PROXY_SHUTDOWN_SPREAD: '200',
    NITRO_WS_PROXY_METRICS_TOKEN: undefined,
    NITRO_WS_PROXY_ACCESS_LOG: undefined,
    APP_METRICS_TOKEN: undefined,
    ...extra,
  }
}

const ws = (base: string, path: string) => base.replace(/^http/, 'ws') + path

/** The access log's JSON lines the server printed so far. */
function accessLines(output: string): Array<Record<string, any>> {
  return output.split('\n').filter(line => line.startsWith('{"msg":"nitro-ws-proxy connection closed"')).map(line => JSON.parse(line))
}

async function metrics(base: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${base}/_ws-proxy/metrics`, { headers })
  return { status: response.status, type: response.headers.get('content-type'), text: await response.text() }
}

async function events(base: string): Promise<Array<{ name: string, event: WsProxyOpenEvent | WsProxyCloseEvent }>> {
  return await (await fetch(`${base}/test-events`)).json() as never
}

async function login(base: string, user: Record<string, unknown>): Promise<string> {
  const response = await fetch(`${base}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user }) })
  expect(response.status).toBe(200)
  return response.headers.getSetCookie().map(c => c.split(';')[0]!).find(c => c.startsWith('h3='))!
}

/** Polls an async `check` every 50 ms until it resolves true (bounded). */
async function pollUntil(check: () => Promise<boolean>, { timeout = 3_000, label = 'condition' } = {}): Promise<void> {
  const deadline = Date.now() + timeout
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeout} ms waiting for ${label}`)
    await sleep(50)
  }
}

/** Total of a counter over every series of `route`. */
function sumOf(m: ReturnType<typeof scrape>, name: string, route: string): number {
  return m.series(name).filter(s => s.labels.route === route).reduce((n, s) => n + s.value, 0)
}

beforeAll(async () => {
  echo = await startUpstream()
  poolB = await startUpstream()
  killed = await startUpstreamProcess()
  frozen = await startUpstreamProcess()
  hanging = await startHangingUpstream()
  delete process.env.NITRO_WS_PROXY_SESSION_PASSWORD
  await buildNodeServer(rootDir)
  server = await startNodeServer(rootDir, appEnv())
}, 120_000)

afterAll(async () => {
  await Promise.all([server, ...extraServers].map(s => s?.stop()))
  await cleanup(5_000)
}, 30_000)

/** Connections the tests opened that the server accepted (101), by route. */
const accepted: Record<string, number> = {}
const count = (route: string, n = 1) => { accepted[route] = (accepted[route] ?? 0) + n }

describe('observe-app (node-server build)', () => {
  it('known traffic, then a scrape: counts exact, bytes within the framing overhead, refusals by status, per-upstream series', async () => {
    const base = server!.url
    // /echo: three clients, two text messages each way on each; two close, the upstream closes one.
    const texts = ['hello', 'wörld €']
    const clients = await Promise.all([0, 1, 2].map(i => wsConnect(ws(base, `/echo/room/${i}?token=abc${i}`))))
    count('/echo/**', 3)
    for (const client of clients) {
      for (const t of texts) {
        client.send(t)
        expect((await client.next()).text).toBe(t)
      }
    }
    // Live: counted while open.
    let m = scrape((await metrics(base)).text)
    expect(m.value(`${P}connections_open`, { route: '/echo/**' })).toBe(3)
    const payload = 3 * texts.reduce((n, t) => n + Buffer.byteLength(t), 0)
    expect(m.value(`${P}bytes_total`, { route: '/echo/**', direction: 'to_upstream' })).toBeGreaterThanOrEqual(payload)
    expect(m.value(`${P}bytes_total`, { route: '/echo/**', direction: 'to_upstream' })).toBeLessThanOrEqual(payload + 6 * 14)

    await clients[0]!.close(1000)
    await clients[1]!.close(4001, 'bye')
    clients[2]!.send('close:4002:upstream done')
    await withTimeout(clients[2]!.closed, 2_000, 'upstream close')

    // /pool: four connections over two upstreams.
    const pooled = await Promise.all([0, 1, 2, 3].map(i => wsConnect(ws(base, `/pool/p${i}`))))
    count('/pool/**', 4)
    for (const client of pooled) {
      client.send('ping')
      await client.next()
      await client.close(1000)
    }
    // /private: refused without a session (401, twice), accepted with one.
    expect((await rawUpgrade(ws(base, '/private/x'))).status).toBe(401)
    expect((await rawUpgrade(ws(base, '/private/x'))).status).toBe(401)
    const cookie = await login(base, { id: 7, name: 'Ann' })
    const privateClient = await wsConnect(ws(base, '/private/room?secret=s3'), { headers: { cookie } })
    count('/private/**')
    privateClient.send('mine')
    await privateClient.next()
    await privateClient.close(1000)
    // Unsafe path (400) and a path no handler serves (404, route="").
    expect((await rawUpgrade(ws(base, '/echo/a%2fb'))).status).toBe(400)
    expect((await rawUpgrade(ws(base, '/nowhere'))).status).toBe(404)

    await pollUntil(async () => {
      const now = scrape((await metrics(base)).text)
      return ['/echo/**', '/pool/**', '/private/**'].every(route => now.value(`${P}connections_open`, { route }) === 0)
    }, { timeout: 3_000, label: 'every connection ended' })
    const scraped = await metrics(base)
    expect(scraped.status).toBe(200)
    expect(scraped.type).toBe('text/plain; version=0.0.4; charset=utf-8')
    m = scrape(scraped.text)

    const echoRoute = { route: '/echo/**' }
    expect(m.value(`${P}connections_total`, echoRoute)).toBe(3)
    expect(m.value(`${P}connections_closed_total`, { ...echoRoute, cause: 'client' })).toBe(2)
    expect(m.value(`${P}connections_closed_total`, { ...echoRoute, cause: 'upstream' })).toBe(1)
    expect(sumOf(m, `${P}connections_closed_total`, '/echo/**')).toBe(3)
    expect(m.value(`${P}messages_total`, { ...echoRoute, direction: 'to_upstream' })).toBe(7)
    expect(m.value(`${P}messages_total`, { ...echoRoute, direction: 'to_client' })).toBe(6)
    const up = m.value(`${P}bytes_total`, { ...echoRoute, direction: 'to_upstream' })!
    const upPayload = payload + Buffer.byteLength('close:4002:upstream done')
    expect(up).toBeGreaterThanOrEqual(upPayload)
    expect(up).toBeLessThanOrEqual(upPayload + 7 * 14)
    const down = m.value(`${P}bytes_total`, { ...echoRoute, direction: 'to_client' })!
    expect(down).toBeGreaterThanOrEqual(payload)
    expect(down).toBeLessThanOrEqual(payload + 6 * 14)
    expect(m.value(`${P}upgrades_refused_total`, { ...echoRoute, status: '400' })).toBe(1)
    expect(m.value(`${P}upgrades_refused_total`, { route: '/private/**', status: '401' })).toBe(2)
    expect(m.value(`${P}upgrades_refused_total`, { route: '', status: '404' })).toBe(1)
    expect(m.value(`${P}connections_total`, { route: '/private/**' })).toBe(1)
    expect(m.value(`${P}connections_total`, { route: '/pool/**' })).toBe(4)
    // Per upstream: origin only; both took connections (least-connections), all healthy.
    const pool = { route: '/pool/**' }
    const perUpstream = m.series(`${P}upstream_connections_total`).filter(s => s.labels.route === '/pool/**')
    expect(perUpstream.map(s => s.labels.upstream).sort()).toEqual([echo.url, poolB.url].sort())
    expect(perUpstream.reduce((n, s) => n + s.value, 0)).toBe(4)
    expect(m.value(`${P}upstream_healthy`, { ...pool, upstream: poolB.url })).toBe(1)
    expect(m.value(`${P}upstream_failed_dials_total`, { ...pool, upstream: poolB.url })).toBe(0)
    const handshakes = [echo.url, poolB.url].map(u => m.histogram(`${P}upstream_handshake_seconds`, { ...pool, upstream: u })!.count)
    expect(handshakes[0]! + handshakes[1]!).toBe(4)
    expect(m.histogram(`${P}connection_duration_seconds`, { ...echoRoute, upstream: echo.url })!.count).toBe(3)
    // No query string, cookie or user anywhere.
    expect(scraped.text).not.toMatch(/token=|abc\d|secret|s3|Ann|h3=/)
  })

  it('ws-proxy:open / ws-proxy:close reach a server plugin with every field', async () => {
    const list = await events(server!.url)
    const opens = list.filter(e => e.name === 'ws-proxy:open').map(e => e.event as WsProxyOpenEvent)
    const closes = list.filter(e => e.name === 'ws-proxy:close').map(e => e.event as WsProxyCloseEvent)
    expect(opens).toHaveLength(8)
    expect(closes).toHaveLength(8)
    expect(new Set(closes.map(c => c.id))).toEqual(new Set(opens.map(o => o.id)))

    const priv = closes.find(c => c.route === '/private/**')!
    expect(priv).toMatchObject({
      clientAddress: '127.0.0.1',
      upstream: `${echo.url}/private/room`,
      user: { id: 7, name: 'Ann' },
      bytes: { toUpstream: 4, toClient: 4 },
      messages: { toUpstream: 1, toClient: 1 },
      client: { code: 1000 },
      upstreamClose: { code: 1000 },
      source: 'client',
      cause: 'client',
    })
    expect(priv.durationMs).toBeGreaterThanOrEqual(0)
    expect(priv.handshakeMs).toBeGreaterThanOrEqual(0)

    const byUpstream = closes.find(c => c.route === '/echo/**' && c.cause === 'upstream')!
    expect(byUpstream).toMatchObject({
      source: 'upstream',
      upstream: `${echo.url}/room/2`,
      client: { code: 4002, reason: 'upstream done' },
      upstreamClose: { code: 4002, reason: 'upstream done' },
      messages: { toUpstream: 3, toClient: 2 },
    })
    const byClient = closes.find(c => c.route === '/echo/**' && c.client.code === 4001)!
    expect(byClient).toMatchObject({ source: 'client', cause: 'client', upstreamClose: { code: 4001, reason: 'bye' } })
    expect(JSON.stringify(list)).not.toMatch(/token=|abc\d|secret=/)

    // The access log has the same connections, one line each, as JSON.
    const lines = accessLines(server!.output())
    expect(lines.map(l => l.id).sort()).toEqual(closes.map(c => c.id).sort())
    expect(lines.find(l => l.id === priv.id)).toMatchObject({ route: '/private/**', user: '7', client: '127.0.0.1', bytes_up: 4, msgs_up: 1, ended_by: 'client', cause: 'client' })
  })

  it('every fault the relay handles: exactly one access log line per connection', async () => {
    const base = server!.url
    const ended = (clients: TestClient[]) => withTimeout(Promise.all(clients.map(c => c.closed)), 5_000, 'closes')

    // Upstream killed mid-stream.
    const k = await Promise.all([0, 1].map(() => wsConnect(ws(base, '/kill/s'))))
    count('/kill/**', 2)
    for (const c of k) c.send('stream')
    await waitFor(() => k.every(c => c.messages.length > 5), { timeout: 3_000, label: 'streams' })
    killed.signal('SIGKILL')
    expect((await ended(k)).map(c => c.code)).toEqual([1011, 1011])

    // Upstream frozen: the heartbeat (100 ms) finds it.
    const f = await Promise.all([0, 1].map(() => wsConnect(ws(base, '/freeze/s'))))
    count('/freeze/**', 2)
    for (const c of f) {
      c.send('hi')
      await c.next()
    }
    frozen.signal('SIGSTOP')
    expect((await ended(f)).map(c => c.reason)).toEqual(['Upstream heartbeat timeout', 'Upstream heartbeat timeout'])

    // Connect timeout (300 ms), and the buffer limit (100 bytes) while connecting.
    const t = await Promise.all([0, 1].map(() => wsConnect(ws(base, '/hang/t'))))
    const b = await wsConnect(ws(base, '/hang/b'))
    count('/hang/**', 3)
    b.send(Buffer.alloc(200), true)
    expect((await ended([...t, b])).map(c => c.code)).toEqual([1011, 1011, 1009])

    // Client idle (200 ms).
    const i = await Promise.all([0, 1].map(() => wsConnect(ws(base, '/idle/i'))))
    count('/idle/**', 2)
    expect((await ended(i)).map(c => c.code)).toEqual([1001, 1001])

    // Client reset: TCP RST, no close frame.
    const raws = await Promise.all([0, 1].map(() => rawWebSocket(ws(base, '/echo/reset'))))
    count('/echo/**', 2)
    await sleep(100)
    for (const raw of raws) raw.socket.resetAndDestroy()

    let m = scrape((await metrics(base)).text)
    await pollUntil(async () => {
      m = scrape((await metrics(base)).text)
      return ['/kill/**', '/freeze/**', '/hang/**', '/idle/**', '/echo/**'].every(route => m.value(`${P}connections_open`, { route }) === 0)
    }, { timeout: 3_000, label: 'fault connections ended' })
    const closed = (route: string, cause: string) => m.value(`${P}connections_closed_total`, { route, cause })
    expect(closed('/kill/**', 'upstream-error')! + closed('/kill/**', 'upstream')!).toBe(2)
    expect(closed('/freeze/**', 'upstream-heartbeat')).toBe(2)
    expect(closed('/hang/**', 'connect-timeout')).toBe(2)
    expect(closed('/hang/**', 'buffer-limit')).toBe(1)
    expect(closed('/idle/**', 'client-idle')).toBe(2)
    expect(closed('/echo/**', 'client')).toBe(4)

    // Shutdown: three connections open on SIGTERM are drained (1001), then the process exits.
    const s = await Promise.all([0, 1, 2].map(() => wsConnect(ws(base, '/echo/late'))))
    count('/echo/**', 3)
    for (const c of s) {
      c.send('x')
      await c.next()
    }
    const total = Object.values(accepted).reduce((n, x) => n + x, 0)
    m = scrape((await metrics(base)).text)
    for (const [route, n] of Object.entries(accepted)) expect([route, m.value(`${P}connections_total`, { route })]).toEqual([route, n])
    await server!.stop()
    expect((await ended(s)).map(c => c.code)).toEqual([1001, 1001, 1001])

    const lines = accessLines(server!.output())
    const perId = new Map<string, number>()
    for (const line of lines) perId.set(line.id, (perId.get(line.id) ?? 0) + 1)
    expect(lines).toHaveLength(total)
    expect(perId.size).toBe(total)
    expect([...perId.values()].every(n => n === 1)).toBe(true)
    const causes: Record<string, number> = {}
    for (const line of lines) causes[`${line.route} ${line.cause}`] = (causes[`${line.route} ${line.cause}`] ?? 0) + 1
    expect(causes['/echo/** shutdown']).toBe(3)
    expect(causes['/freeze/** upstream-heartbeat']).toBe(2)
    expect(causes['/hang/** connect-timeout']).toBe(2)
    expect(causes['/hang/** buffer-limit']).toBe(1)
    expect(causes['/idle/** client-idle']).toBe(2)
    for (const line of lines) expect(JSON.stringify(line)).not.toMatch(/token=|secret=/)
  }, 60_000)
})

describe('observe-app: who may read the metrics, the access log by env, the prom-client recipe', () => {
  it('loopback without a token; a request relayed by a proxy on this host gets the same 404 as a missing path', async () => {
    const base = await startExtra({})
    expect((await metrics(base)).status).toBe(200)
    const missing = await fetch(`${base}/_ws-proxy/nothing`)
    const missingBody = (await missing.text()).replaceAll('/_ws-proxy/nothing', '<path>')
    const relayed = await fetch(`${base}/_ws-proxy/metrics`, { headers: { 'x-forwarded-for': '203.0.113.9' } })
    expect(relayed.status).toBe(404)
    expect((await relayed.text()).replaceAll('/_ws-proxy/metrics', '<path>')).toBe(missingBody)
    expect(relayed.headers.get('content-type')).toBe(missing.headers.get('content-type'))
    expect((await fetch(`${base}/_ws-proxy/metrics`, { method: 'POST' })).status).toBe(404)
  })

  it('with NITRO_WS_PROXY_METRICS_TOKEN only the bearer gets them; NITRO_WS_PROXY_ACCESS_LOG=text switches the format', async () => {
    const base = await startExtra({ NITRO_WS_PROXY_METRICS_TOKEN: 'tok-7f3a', NITRO_WS_PROXY_ACCESS_LOG: 'text' })
    expect((await metrics(base)).status).toBe(404)
    expect((await metrics(base, { authorization: 'Bearer wrong' })).status).toBe(404)
    expect((await metrics(base, { authorization: 'tok-7f3a' })).status).toBe(404)
    const ok = await metrics(base, { authorization: 'Bearer tok-7f3a' })
    expect(ok.status).toBe(200)
    scrape(ok.text)
    expect(ok.text).not.toContain('tok-7f3a')

    const client = await wsConnect(ws(base, '/echo/t?k=v'))
    client.send('abc')
    await client.next()
    await client.close(1000)
    const extra = extraServers.at(-1)!
    await waitFor(() => /\[nitro-ws-proxy\] ts=\S+ route=\/echo\/\*\* /.test(extra.output()), { timeout: 3_000, label: 'text access line' })
    const line = extra.output().split('\n').find(l => l.startsWith('[nitro-ws-proxy] ts='))!
    expect(line).toMatch(/ upstream=ws:\/\/127\.0\.0\.1:\d+\/t user=- .* bytes_up=3 bytes_down=3 msgs_up=1 msgs_down=1 client_code=1000 client_reason="" upstream_code=1000 upstream_reason="" ended_by=client cause=client$/)
    expect(accessLines(extra.output())).toEqual([])
  })

  const promClient = (() => {
    try {
      createRequire(`${rootDir}package.json`).resolve('prom-client')
      return true
    }
    catch {
      return false
    }
  })()

  it.runIf(promClient)('the prom-client recipe: the app\'s registry and the proxy\'s metrics from one route', async () => {
    const base = await startExtra({ APP_METRICS_TOKEN: 'app-token' })
    const client = await wsConnect(ws(base, '/echo/r'))
    client.send('12345')
    await client.next()
    await client.close(1000)
    expect((await fetch(`${base}/metrics`)).status).toBe(404)
    await pollUntil(async () => {
      const r = await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer app-token' } })
      return scrape(await r.text()).value(`${P}connections_closed_total`, { route: '/echo/**', cause: 'client' }) === 1
    }, { timeout: 3_000, label: 'close counted' })
    const response = await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer app-token' } })
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8')
    const m = scrape(await response.text())
    expect(m.value('app_metrics_requests_total')).toBeGreaterThanOrEqual(2)
    expect(m.families.some(f => f.name === 'process_cpu_user_seconds_total')).toBe(true)
    expect(m.value(`${P}connections_total`, { route: '/echo/**' })).toBe(1)
    expect(m.value(`${P}bytes_total`, { route: '/echo/**', direction: 'to_upstream' })).toBe(5)
  })
})

async function startExtra(env: ChildEnv): Promise<string> {
  const extra = await startNodeServer(rootDir, appEnv(env))
  extraServers.push(extra)
  return extra.url
}
