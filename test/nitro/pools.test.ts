/**
 * Upstream pools and deploy features (issue 10) through a real Nitro `node-server` build of
 * test/fixtures/pool-app, run with Node as a child process on 127.0.0.1 and an ephemeral port:
 *
 * 1. a `target` list set by env (JSON array): least-connections spread, per-entry wildcard
 *    mapping, failover past a closed port with the client's early frames delivered once, in order;
 * 2. `balance: 'hash', hashKey: 'user'` on a session-auth route: a user sticks to one upstream;
 * 3. `useWsProxy()` (auto-imported server util) in app routes: revoke one user's sockets, stats;
 * 4. `maxLifetime`;
 * 5. the shutdown drain on SIGTERM with 1,000 open connections (module option `shutdown`);
 * 6. build-time errors naming the route and field;
 * 7. the generated type of `useWsProxy`.
 *
 * Upstreams are `ws` servers in this process (test/helpers). Servers are stopped by pid.
 */
import { type ChildProcess, execFile } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { normalizeWsProxyRules } from '../../src/nitro'
import { generatePassword } from '../auth/helpers'
import { cleanup, refusedUrl, sleep, startUpstream, type TestClient, type Upstream, wsConnect } from '../helpers'
import { withTimeout } from '../helpers/wait'
import { buildNodeServer, type ChildEnv, type ChildServer, fixtureDir, startNodeServer } from './harness'

const rootDir = fixtureDir('pool-app')
const tsc = fileURLToPath(new URL('../../node_modules/typescript/bin/tsc', import.meta.url))
const password = generatePassword()

let poolUps: Upstream[] = []
let stickyUps: Upstream[] = []
let lifeUp: Upstream
let server: ChildServer | undefined
const extraServers: ChildServer[] = []

const ws = (base: string, path: string) => base.replace(/^http/, 'ws') + path
const origin = (up: Upstream) => up.url
const LETTERS = ['a', 'b', 'c']

/** The pool's env value: a JSON array, one entry per upstream, each with its own base path. */
function poolTarget(urls: string[]): string {
  return JSON.stringify(urls.map((url, i) => `${url}/${LETTERS[i]}/**`))
}

function appEnv(extra: ChildEnv = {}): ChildEnv {
  return {
    NITRO_WS_PROXY_POOL_TARGET: poolTarget(poolUps.map(origin)),
    NITRO_WS_PROXY_STICKY_TARGET: JSON.stringify(stickyUps.map(up => `${up.url}/s/**`)),
    NITRO_WS_PROXY_LIFE_TARGET: `${lifeUp.url}/life/**`,
    NITRO_WS_PROXY_SESSION_PASSWORD: password,
    NITRO_WS_PROXY_SHUTDOWN_SPREAD: undefined,
    ...extra,
  }
}

/** POST the fixture's login route; resolves the `h3` session cookie. */
async function login(base: string, user: Record<string, unknown>): Promise<string> {
  const response = await fetch(`${base}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user }),
  })
  expect(response.status).toBe(200)
  const cookie = response.headers.getSetCookie().map(c => c.split(';')[0]!).find(c => c.startsWith('h3='))
  expect(cookie).toBeDefined()
  return cookie!
}

/** Open `count` clients, at most `batch` handshakes in flight at once. */
async function openMany(count: number, url: (i: number) => string, batch = 50, headers?: Record<string, string>): Promise<TestClient[]> {
  const clients: TestClient[] = []
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i)
    clients.push(...await Promise.all(Array.from({ length: n }, (_, j) => wsConnect(url(i + j), { timeout: 5000, headers }))))
  }
  return clients
}

async function closeAll(clients: TestClient[]): Promise<void> {
  await Promise.all(clients.filter(c => c.isOpen).map(c => c.close().catch(() => undefined)))
}

/** Index of the upstream (in `ups`) whose handshake count grew since `before`. */
function whichGrew(ups: Upstream[], before: number[]): number[] {
  return ups.map((up, i) => up.handshakes.length - before[i]!).flatMap((d, i) => Array.from({ length: d }, () => i))
}

/** What a new upgrade gets: the status line, or the socket error code / 'closed'. */
function upgradeAttempt(base: string, path: string): Promise<string> {
  const { hostname, port, host } = new URL(base)
  return withTimeout(new Promise<string>((resolve) => {
    const socket = connect(Number(port), hostname)
    let data = ''
    socket.on('error', error => resolve((error as NodeJS.ErrnoException).code ?? String(error)))
    socket.on('close', () => resolve(data.split('\r\n')[0] || 'closed without an answer'))
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1')
      if (data.includes('\r\n\r\n')) {
        resolve(data.split('\r\n').filter(l => /^HTTP|^retry-after/i.test(l)).join(', '))
        socket.destroy()
      }
    })
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`))
  }), 2000, `upgrade of ${path}`).catch(() => 'no answer in 2 s')
}

function exitOf(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(Date.now())
    else child.once('exit', () => resolve(Date.now()))
  })
}

beforeAll(async () => {
  poolUps = await Promise.all([startUpstream(), startUpstream(), startUpstream()])
  stickyUps = await Promise.all([startUpstream(), startUpstream(), startUpstream()])
  lifeUp = await startUpstream()
  delete process.env.NITRO_WS_PROXY_SESSION_PASSWORD
  await buildNodeServer(rootDir)
  // Drain at once when this server is stopped (the env override of the module option): only
  // the drain test below uses the fixture's 3 s spread.
  server = await startNodeServer(rootDir, appEnv({ NITRO_WS_PROXY_SHUTDOWN_SPREAD: '0' }))
}, 120_000)

afterAll(async () => {
  await Promise.all([server, ...extraServers].map(s => s?.stop()))
  await cleanup()
}, 30_000)

describe('pool-app (node-server build): a target list', () => {
  it('spreads connections over all three upstreams (least-connections), mapping the path per entry; stats per upstream', async () => {
    const base = server!.url
    const paths = Array.from({ length: 29 }, (_, i) => `/pool/room/${i}?q=${i}`)
    paths.push('/pool?bare=1')
    const clients = await openMany(paths.length, i => ws(base, paths[i]!), 10)
    await expect.poll(() => poolUps.map(u => u.connections), { timeout: 3000 }).toEqual([10, 10, 10])

    // Each upstream got its own base path with the client path below the prefix and the query.
    const seen: string[] = []
    poolUps.forEach((up, i) => {
      for (const { url } of up.handshakes) {
        expect(url.startsWith(`/${LETTERS[i]}/`) || url.startsWith(`/${LETTERS[i]}?`), url).toBe(true)
        seen.push(url.slice(2))
      }
    })
    expect(seen.sort()).toEqual(paths.map(p => p.slice('/pool'.length)).sort())

    const stats = await (await fetch(`${base}/ws-stats`)).json() as Record<string, any>
    expect(Object.keys(stats).sort()).toEqual(['/life/**', '/pool/**', '/sticky/**'])
    expect(stats['/pool/**'].open).toBe(30)
    expect(stats['/pool/**'].upstreams).toEqual(Object.fromEntries(poolUps.map(up => [
      origin(up),
      { open: 10, opened: 10, failedDials: 0, healthy: true },
    ])))
    // Registered from the start (active checks need them), before any connection.
    expect(Object.keys(stats['/sticky/**'].upstreams).sort()).toEqual(stickyUps.map(origin).sort())
    await closeAll(clients)
    await expect.poll(() => poolUps.map(u => u.connections), { timeout: 3000 }).toEqual([0, 0, 0])
  }, 20_000)

  it('fails over past a closed port: every connection opens, early client frames arrive once and in order', async () => {
    // Upstreams that answer the handshake after 50 ms: the client's first frames are sent while
    // the proxy is still dialling (the dead one first, often: it has the fewest connections).
    const live = await Promise.all([startUpstream({ handshakeDelay: 50 }), startUpstream({ handshakeDelay: 50 })])
    const dead = await refusedUrl()
    // maxFails 0 (env override of a pool option): the dead upstream is never taken out, so
    // every connection that picks it has to fail over.
    const other = await startNodeServer(rootDir, appEnv({
      NITRO_WS_PROXY_POOL_TARGET: poolTarget([live[0]!.url, dead, live[1]!.url]),
      NITRO_WS_PROXY_POOL_MAX_FAILS: '0',
      NITRO_WS_PROXY_SHUTDOWN_SPREAD: '0',
    }))
    extraServers.push(other)
    const count = 30
    const clients: TestClient[] = []
    for (let i = 0; i < count; i += 10) {
      clients.push(...await Promise.all(Array.from({ length: 10 }, async (_, j) => {
        const n = i + j
        const client = await wsConnect(ws(other.url, `/pool/f/${n}`), { timeout: 5000 })
        for (let k = 1; k <= 3; k++) client.send(`${n}:${k}`)
        return client
      })))
    }
    // Every client gets its three frames back, once, in order.
    for (const [n, client] of clients.entries()) {
      const echoed = [await client.next(3000), await client.next(3000), await client.next(3000)].map(m => m.text)
      expect(echoed).toEqual([`${n}:1`, `${n}:2`, `${n}:3`])
    }
    await sleep(100)
    for (const [n, client] of clients.entries()) expect([n, client.messages.length]).toEqual([n, 3])
    // ... and the upstreams received each frame once, in order, on one connection.
    const received = [...live[0]!.received, ...live[1]!.received].map(f => f.text)
    expect(received).toHaveLength(count * 3)
    for (let n = 0; n < count; n++) expect(received.filter(t => t.startsWith(`${n}:`))).toEqual([`${n}:1`, `${n}:2`, `${n}:3`])
    expect(live[0]!.connections + live[1]!.connections).toBe(count)
    expect(live[0]!.handshakes.map(h => h.url).every(u => u.startsWith('/a/f/'))).toBe(true)
    expect(live[1]!.handshakes.map(h => h.url).every(u => u.startsWith('/c/f/'))).toBe(true)

    const stats = (await (await fetch(`${other.url}/ws-stats`)).json() as Record<string, any>)['/pool/**']
    const deadStats = stats.upstreams[dead]
    console.info(`[pools] failover: ${count}/${count} opened; per upstream ${JSON.stringify(stats.upstreams)}`)
    expect(deadStats).toMatchObject({ open: 0, opened: 0 })
    expect(deadStats.failedDials).toBeGreaterThan(0)
    expect(stats.upstreams[live[0]!.url].opened + stats.upstreams[live[1]!.url].opened).toBe(count)
    expect(stats.closed['upstream-error']).toBe(0)
    await closeAll(clients)
    await other.stop()
  }, 30_000)
  it('default passive health: a dead upstream gets one failed dial, then none; a bad entry in the env list is named', async () => {
    const live = await Promise.all([startUpstream(), startUpstream()])
    const dead = await refusedUrl()
    const other = await startNodeServer(rootDir, appEnv({
      NITRO_WS_PROXY_POOL_TARGET: poolTarget([live[0]!.url, dead, live[1]!.url]),
      NITRO_WS_PROXY_SHUTDOWN_SPREAD: '0',
    }))
    extraServers.push(other)
    const clients = await openMany(3, i => ws(other.url, `/pool/p/${i}`), 1)
    clients.push(...await openMany(27, i => ws(other.url, `/pool/p/${i + 3}`), 10))
    await expect.poll(() => live[0]!.connections + live[1]!.connections, { timeout: 3000 }).toBe(30)
    const stats = (await (await fetch(`${other.url}/ws-stats`)).json() as Record<string, any>)['/pool/**']
    console.info(`[pools] passive health (maxFails 1): per upstream ${JSON.stringify(stats.upstreams)}`)
    expect(stats.upstreams[dead]).toEqual({ open: 0, opened: 0, failedDials: 1, healthy: false })
    await closeAll(clients)
    await other.stop()

    const bad = await startNodeServer(rootDir, appEnv({
      NITRO_WS_PROXY_POOL_TARGET: JSON.stringify([`${live[0]!.url}/a/**`, 'http://bad/**']),
      NITRO_WS_PROXY_SHUTDOWN_SPREAD: '0',
    }))
    extraServers.push(bad)
    expect(await upgradeAttempt(bad.url, '/pool/x')).toMatch(/^HTTP\/1\.1 500/)
    expect(bad.output()).toContain(`[nitro-ws-proxy] runtimeConfig.wsProxy.pool.target[1] (env NITRO_WS_PROXY_POOL_TARGET) of route /pool/** must be a ws://, wss:// or ws+unix: URL, got "http://bad/**"`)
    const life = await wsConnect(ws(bad.url, '/life/still-works'))
    await life.close()
    await bad.stop()
  }, 20_000)
})

describe('pool-app: balance hash on the session user', () => {
  it('sends 20 reconnects of one user to the same upstream; users spread over the pool', async () => {
    const base = server!.url
    const cookies = new Map<number, string>()
    for (const id of [1, 2, 3, 4, 5, 6, 7, 8, 9]) cookies.set(id, await login(base, { id, name: `user${id}` }))

    // Load on the pool does not move a user: user 8 holds 5 connections meanwhile.
    const held = await openMany(5, i => ws(base, `/sticky/hold/${i}`), 5, { cookie: cookies.get(8)! })
    // The client is accepted before the upstream is dialled: wait for the upstream legs.
    await expect.poll(() => stickyUps.reduce((n, u) => n + u.connections, 0), { timeout: 3000 }).toBe(5)
    const landed: number[] = []
    for (let k = 0; k < 20; k++) {
      const before = stickyUps.map(u => u.handshakes.length)
      const client = await wsConnect(ws(base, `/sticky/r/${k}`), { headers: { cookie: cookies.get(7)! } })
      client.send('hi')
      expect((await client.next()).text).toBe('hi')
      await client.close()
      landed.push(...whichGrew(stickyUps, before))
    }
    expect(landed).toHaveLength(20)
    expect(new Set(landed).size).toBe(1)
    const seven = stickyUps[landed[0]!]!
    expect(seven.handshakes.at(-1)!.url).toBe('/s/r/19')
    expect(JSON.parse(String(seven.handshakes.at(-1)!.headers['x-ws-proxy-user']))).toEqual({ id: 7, name: 'user7' })

    const byUser: Record<number, number[]> = {}
    for (const id of cookies.keys()) {
      const picks: number[] = []
      for (let k = 0; k < 3; k++) {
        const before = stickyUps.map(u => u.handshakes.length)
        const client = await wsConnect(ws(base, `/sticky/u/${id}`), { headers: { cookie: cookies.get(id)! } })
        await client.close()
        picks.push(...whichGrew(stickyUps, before))
      }
      byUser[id] = picks
    }
    console.info(`[pools] hash on user: user 7 → upstream #${landed[0]} (20/20); users → ${JSON.stringify(Object.fromEntries(Object.entries(byUser).map(([id, p]) => [id, p[0]])))}`)
    for (const [id, picks] of Object.entries(byUser)) expect([id, new Set(picks).size]).toEqual([id, 1])
    expect(byUser[7]![0]).toBe(landed[0])
    // Nine users over three upstreams: not all on one.
    expect(new Set(Object.values(byUser).map(p => p[0])).size).toBeGreaterThan(1)
    await closeAll(held)
  }, 20_000)
})

describe('pool-app: useWsProxy() in server routes', () => {
  it('logout closes exactly that user\'s sockets with 1008 within 100 ms; others stay open', async () => {
    const base = server!.url
    const alice = await login(base, { id: 7, name: 'alice' })
    const bob = await login(base, { id: 8, name: 'bob' })
    const aliceClients = await openMany(3, i => ws(base, `/sticky/a/${i}`), 3, { cookie: alice })
    const bobClients = await openMany(2, i => ws(base, `/sticky/b/${i}`), 2, { cookie: bob })
    const anonymous = await wsConnect(ws(base, '/pool/anon'))
    await expect.poll(() => stickyUps.reduce((n, u) => n + u.connections, 0), { timeout: 3000 }).toBe(5)
    const upstreamCloses = stickyUps.map(u => u.closes.length)

    const requestAt = Date.now()
    const response = await fetch(`${base}/logout`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: 7 }),
    })
    const body = await response.json()
    const responseAt = Date.now()
    expect(response.status).toBe(200)
    expect(body).toEqual({ closed: 3 })

    const closes = await withTimeout(Promise.all(aliceClients.map(c => c.closed)), 2000, 'alice closed')
    const fromResponse = closes.map(c => c.at - responseAt)
    const fromRequest = closes.map(c => c.at - requestAt)
    console.info(`[pools] revoke: closes ${JSON.stringify(fromRequest)} ms after the request, ${JSON.stringify(fromResponse)} ms after the response (${responseAt - requestAt} ms round trip)`)
    for (const c of closes) expect(c).toMatchObject({ code: 1008, reason: 'Revoked' })
    for (const d of fromResponse) expect(d).toBeLessThanOrEqual(100)
    // The upstream legs got 1008 too.
    await expect.poll(() => stickyUps.flatMap((u, i) => u.closes.slice(upstreamCloses[i])), { timeout: 2000 })
      .toEqual([{ code: 1008, reason: 'Revoked' }, { code: 1008, reason: 'Revoked' }, { code: 1008, reason: 'Revoked' }])

    await sleep(200)
    for (const client of [...bobClients, anonymous]) {
      expect(client.isOpen).toBe(true)
      client.send('still here')
      expect((await client.next()).text).toBe('still here')
    }
    const stats = await (await fetch(`${base}/ws-stats`)).json() as Record<string, any>
    expect(stats['/sticky/**'].closed.revoked).toBe(3)
    expect(stats['/sticky/**'].open).toBe(2)
    expect(stats['/pool/**'].open).toBe(1)
    for (const up of Object.values(stats['/sticky/**'].upstreams) as any[]) {
      expect(Object.keys(up).sort()).toEqual(['failedDials', 'healthy', 'open', 'opened'])
    }
    expect((Object.values(stats['/sticky/**'].upstreams) as any[]).reduce((n, u) => n + u.open, 0)).toBe(2)

    // Nobody else matched: a user id with no sockets closes none.
    const none = await fetch(`${base}/logout`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"id":99}' })
    expect(await none.json()).toEqual({ closed: 0 })
    await closeAll([...bobClients, anonymous])
  }, 20_000)
})

describe('pool-app: maxLifetime', () => {
  it('closes a connection with 1001 on both legs 1.35 s to 1.65 s after it opened', async () => {
    const closesBefore = lifeUp.closes.length
    const clients = await Promise.all(Array.from({ length: 6 }, async (_, i) => {
      const client = await wsConnect(ws(server!.url, `/life/x/${i}`))
      return { client, openedAt: Date.now() }
    }))
    const lifetimes = await withTimeout(Promise.all(clients.map(async ({ client, openedAt }) => {
      const closed = await client.closed
      expect(closed).toMatchObject({ code: 1001, reason: 'Connection lifetime reached' })
      return closed.at - openedAt
    })), 4000, 'lifetime closes')
    console.info(`[pools] maxLifetime 1500: closed after ${JSON.stringify(lifetimes.sort((a, b) => a - b))} ms`)
    // ±10 % jitter; a few ms of slack for the client's open and close events.
    for (const t of lifetimes) {
      expect(t).toBeGreaterThanOrEqual(1350 - 10)
      expect(t).toBeLessThanOrEqual(1650 + 15)
    }
    await expect.poll(() => lifeUp.closes.slice(closesBefore).map(c => c.code), { timeout: 2000 })
      .toEqual([1001, 1001, 1001, 1001, 1001, 1001])
  }, 15_000)
})

describe('pool-app: shutdown drain (module option shutdown.spread = 3000)', () => {
  it('closes 1,000 connections with 1001 on both legs, spread over 3 s, and exits within spread + 2 s', async () => {
    const spread = 3000
    const count = 1000
    const upstreamCloses: Array<{ code: number, at: number }> = []
    const ups = await Promise.all([0, 1, 2].map(() => startUpstream({
      onConnection: (socket) => { socket.on('close', code => upstreamCloses.push({ code, at: Date.now() })) },
    })))
    const drainer = await startNodeServer(rootDir, appEnv({ NITRO_WS_PROXY_POOL_TARGET: poolTarget(ups.map(origin)) }))
    extraServers.push(drainer)
    const exited = exitOf(drainer.child)

    const openStart = Date.now()
    const clients = await openMany(count, i => ws(drainer.url, `/pool/d/${i}`), 100)
    const openMs = Date.now() - openStart
    await expect.poll(() => ups.reduce((n, u) => n + u.connections, 0), { timeout: 5000 }).toBe(count)
    const perUpstream = ups.map(u => u.connections)

    const signalAt = Date.now()
    drainer.child.kill('SIGTERM')
    // A new upgrade during the drain is not accepted (503 from the proxy, or refused by Nitro's
    // graceful shutdown, which stops listening and destroys new sockets).
    await sleep(500)
    const late = await upgradeAttempt(drainer.url, '/pool/late')

    const closes = await withTimeout(Promise.all(clients.map(c => c.closed)), spread + 5000, 'every client closed')
    const exitAt = await withTimeout(exited, 5000, 'server exit')
    await expect.poll(() => upstreamCloses.length, { timeout: 3000 }).toBe(count)

    const codes: Record<number, number> = {}
    for (const c of closes) codes[c.code] = (codes[c.code] ?? 0) + 1
    const upstreamCodes: Record<number, number> = {}
    for (const c of upstreamCloses) upstreamCodes[c.code] = (upstreamCodes[c.code] ?? 0) + 1
    const times = closes.map(c => c.at - signalAt).sort((a, b) => a - b)
    const bins = Array.from({ length: Math.ceil((times.at(-1)! + 1) / 1000) }, (_, s) => times.filter(t => t >= s * 1000 && t < (s + 1) * 1000).length)
    const quarter = Array.from({ length: Math.ceil((times.at(-1)! + 1) / 250) }, (_, s) => times.filter(t => t >= s * 250 && t < (s + 1) * 250).length)
    // Busiest sliding 1 s window.
    let busiest = 0
    for (let i = 0, j = 0; i < times.length; i++) {
      while (j < times.length && times[j]! < times[i]! + 1000) j++
      busiest = Math.max(busiest, j - i)
    }
    const averagePerSecond = count / (spread / 1000)
    const pct = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))]
    console.info([
      `[pools] drain: ${count} connections opened in ${openMs} ms, per upstream ${JSON.stringify(perUpstream)}`,
      `  client close codes ${JSON.stringify(codes)}, upstream close codes ${JSON.stringify(upstreamCodes)}`,
      `  client closes after SIGTERM: first ${times[0]} ms, p10 ${pct(0.1)}, p50 ${pct(0.5)}, p90 ${pct(0.9)}, last ${times.at(-1)} ms`,
      `  per 1 s window ${JSON.stringify(bins)}; per 250 ms ${JSON.stringify(quarter)}`,
      `  busiest sliding 1 s window ${busiest} (average ${averagePerSecond.toFixed(0)}/s, limit ${2 * averagePerSecond})`,
      `  process exit ${exitAt - signalAt} ms after SIGTERM (limit ${spread + 2000}); upgrade during the drain: ${late}`,
    ].join('\n'))

    expect(codes).toEqual({ 1001: count })
    expect(upstreamCodes).toEqual({ 1001: count })
    expect(busiest).toBeLessThanOrEqual(2 * averagePerSecond)
    // Spread, not all at once: the last close comes near the end of the spread.
    expect(times.at(-1)!).toBeGreaterThan(spread * 0.8)
    expect(exitAt - signalAt).toBeLessThanOrEqual(spread + 2000)
    expect(late).not.toMatch(/^HTTP\/1\.1 101/)
    expect(drainer.output()).not.toMatch(/exceeds NITRO_SHUTDOWN_TIMEOUT|Graceful shutdown timeout/)
  }, 40_000)
})

describe('build-time errors name the route and the field', () => {
  const normalize = (rules: Record<string, Record<string, unknown>>) => normalizeWsProxyRules(rules)

  it.each([
    [{ target: [] }, `[nitro-ws-proxy] routeRules['/x'].wsProxy.target must list at least one upstream URL`],
    [{ target: ['ws://ok/**', 'http://bad'] }, `[nitro-ws-proxy] routeRules['/x'].wsProxy.target[1] must be a ws://, wss:// or ws+unix: URL, got "http://bad"`],
    [{ target: ['ws://ok/**', 'ws://ok/a/**/b'] }, `[nitro-ws-proxy] routeRules['/x'].wsProxy.target[1] may only use a wildcard as a trailing /**`],
    [{ target: ['ws://a', 'ws://b'], balance: 'fastest' }, `[nitro-ws-proxy] routeRules['/x'].wsProxy.balance must be one of 'least-connections', 'round-robin', 'random', 'hash', got "fastest"`],
    [{ target: ['ws://a', 'ws://b'], balance: 'hash' }, `[nitro-ws-proxy] routeRules['/x'].wsProxy.hashKey is required with balance 'hash'`],
    [{ target: ['ws://a', 'ws://b'], balance: 'hash', hashKey: 'session' }, `[nitro-ws-proxy] routeRules['/x'].wsProxy.hashKey must be 'user', 'ip', 'header:<name>', 'query:<name>' or 'cookie:<name>', got "session"`],
    [{ target: ['ws://a', 'ws://b'], healthCheck: { interval: 10 } }, `[nitro-ws-proxy] routeRules['/x'].wsProxy.healthCheck.interval must be a number of milliseconds >= 100, got 10`],
    [{ target: 'ws://a', maxLifetime: -1 }, `[nitro-ws-proxy] routeRules['/x'].wsProxy.maxLifetime must be a non-negative number, got -1`],
  ])('rejects %j', (rule, message) => {
    expect(() => normalize({ '/x': { wsProxy: rule } })).toThrow(message)
  })

  it('accepts a valid pool rule and keeps the list in the runtime config', () => {
    const [rule] = normalize({ '/x/**': { wsProxy: { target: ['ws://a:1/**', 'ws://b:2/**'], balance: 'hash', hashKey: 'user', healthCheck: { interval: 100, path: '/healthz' }, maxLifetime: 1500 } } })
    expect(rule!.runtime).toMatchObject({ target: ['ws://a:1/**', 'ws://b:2/**'], balance: 'hash', hashKey: 'user', healthCheck: { interval: 100, path: '/healthz' }, maxLifetime: 1500 })
  })

  it('fails the Nitro module setup (the first step of a build) for a bad target entry and a negative shutdown spread', async () => {
    const { createNitro } = await import('nitropack/core')
    const attempt = async (overrides: Record<string, unknown>) => {
      try {
        const nitro = await createNitro({ rootDir, dev: false, preset: 'node-server', logLevel: 0, ...overrides } as any)
        await nitro.close()
        return 'no error'
      }
      catch (error) {
        return String((error as Error).message)
      }
    }
    expect(await attempt({ routeRules: { '/x': { wsProxy: { target: ['ws://ok/**', 'http://bad'] } } } }))
      .toContain(`[nitro-ws-proxy] routeRules['/x'].wsProxy.target[1] must be a ws://, wss:// or ws+unix: URL, got "http://bad"`)
    expect(await attempt({ wsProxy: { shutdown: { spread: -1 } } }))
      .toContain(`[nitro-ws-proxy] wsProxy.shutdown.spread must be a non-negative number of milliseconds, got -1`)
  }, 30_000)
})

describe('pool-app: generated types', () => {
  it('declares the auto-imported useWsProxy in the build\'s generated imports', async () => {
    const imports = await readFile(`${rootDir}.nitro/prod/types/nitro-imports.d.ts`, 'utf8')
    expect(imports).toMatch(/const useWsProxy: typeof import\('[^']*\/dist\/runtime\/use-ws-proxy'\)(\.useWsProxy|\['useWsProxy'\])/)
  })

  it('types useWsProxy() for server code: close filter and per-upstream stats (tsc)', async () => {
    // The build's generated global declarations and one server file using the util, with the
    // compiler settings of Nitro's generated tsconfig that matter here (skipLibCheck) plus strict.
    const dir = `${rootDir}.nitro/typecheck/`
    await mkdir(dir, { recursive: true })
    await writeFile(`${dir}tsconfig.json`, JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, skipLibCheck: true, target: 'ESNext', module: 'ESNext', moduleResolution: 'Bundler', types: ['node'] },
      files: ['../prod/types/nitro-imports.d.ts', './check.ts'],
    }))
    await writeFile(`${dir}check.ts`, [
      `const control = useWsProxy()`,
      `const closed: number = control.close({ route: '/pool/**', user: u => u.id === 7 }, 1008, 'Logged out')`,
      `const up = control.stats()['/pool/**']!.upstreams['ws://127.0.0.1:4000']!`,
      `const counts: [number, number, number, boolean] = [up.open, up.opened, up.failedDials, up.healthy]`,
      `// @ts-expect-error a typo in the filter`,
      `control.close({ usr: () => true })`,
      `// @ts-expect-error per-upstream stats have no latency (fails if stats() is any)`,
      `void up.latency`,
      `export { closed, counts }`,
      '',
    ].join('\n'))
    const { code, output } = await new Promise<{ code: number, output: string }>((resolve) => {
      execFile(process.execPath, [tsc, '-p', dir], { timeout: 60_000 }, (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, output: `${stdout}${stderr}` })
      })
    })
    // Fails while dist/runtime/use-ws-proxy.d.ts imports '../core/types', which the build does
    // not ship (dist/core has only reject and deno-adapter): stats() is then silently `any`.
    expect(output, 'tsc on a server file using useWsProxy()').toBe('')
    expect(code).toBe(0)
  }, 60_000)
})
