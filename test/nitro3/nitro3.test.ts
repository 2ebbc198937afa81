/**
 * The Nitro module on Nitro 3 (the `nitro` package, beta; test/fixtures/nitro3-app, its own
 * install and lockfile): `nitro build` with the fixture's own CLI, the built node-server output
 * run with Node, and `nitro dev`. Same behaviour suite as the nitropack 2 fixtures.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cleanup, type Upstream, wsConnect } from '../helpers'
import { withTimeout } from '../helpers/wait'
import { type BuildInfo, buildFixture, type FixtureServer, startBuiltFixture, startDevFixture, stopAllServers } from '../nuxt/lines'
import { describeProxyBehaviour, fixtureEnv, rawUpgradeStatus, startFixtureUpstream } from '../nitro/suite'

afterAll(async () => {
  await stopAllServers()
  await cleanup()
}, 30_000)

/**
 * `useWsProxy()` and `renderWsProxyMetrics()` imported from `nitro-ws-proxy/runtime` by the
 * fixture's own routes (Nitro 3 has no auto-imports; the fixture has no copy of the package in
 * its node_modules: the module's alias is what resolves the import).
 */
function describeRuntimeImports(getUrl: () => string): void {
  it('useWsProxy().stats() and .close({ route }) from server routes', async () => {
    const url = getUrl()
    const client = await wsConnect(`${url.replace(/^http/, 'ws')}/open/control`)
    client.send('counted')
    expect((await client.next()).text).toBe('counted')
    const stats = await (await fetch(`${url}/control/stats`)).json() as Record<string, { open: number, messages: { toUpstream: number } }>
    expect(Object.keys(stats)).toContain('/open/**')
    expect(stats['/open/**']!.open).toBeGreaterThanOrEqual(1)
    expect(stats['/open/**']!.messages.toUpstream).toBeGreaterThanOrEqual(1)
    const response = await fetch(`${url}/control/close?route=${encodeURIComponent('/open/**')}`, { method: 'POST' })
    expect(response.status).toBe(200)
    const { closed } = await response.json() as { closed: number }
    expect(closed).toBe(stats['/open/**']!.open)
    expect(await withTimeout(client.closed, 3000, 'close by useWsProxy().close')).toMatchObject({ code: 4001, reason: 'Closed by the app' })
  }, 15_000)

  it('renderWsProxyMetrics() in the app\'s own metrics route', async () => {
    const response = await fetch(`${getUrl()}/app-metrics`)
    expect(response.status).toBe(200)
    const text = await response.text()
    expect(text.startsWith('app_up 1\n')).toBe(true)
    expect(text).toMatch(/^nitro_ws_proxy_connections_total\{route="\/open\/\*\*"\} [1-9]/m)
  }, 10_000)
}

describe('Nitro 3: nitro build (node-server)', () => {
  let upstream: Upstream
  let build: BuildInfo
  let server: FixtureServer

  beforeAll(async () => {
    upstream = await startFixtureUpstream()
    build = await buildFixture('nitro3-app')
    server = await startBuiltFixture('nitro3-app', build.entry, fixtureEnv(upstream))
  }, 240_000)

  afterAll(() => server?.stop(), 15_000)

  it('builds with its own nitro CLI and serves the app', async () => {
    console.log(`[nitro3-app] build ${build.built ? 'ran' : 'reused'} in ${(build.ms / 1000).toFixed(1)} s`)
    const response = await fetch(`${server.url}/`)
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('nitro-ws-proxy Nitro 3 fixture')
  }, 10_000)

  describeProxyBehaviour('Nitro 3 build', () => ({ url: server.url, upstream }))

  describeRuntimeImports(() => server.url)

  it('answers proxied upgrades before app middleware; upgrades the app refuses keep its status', async () => {
    // server/middleware/block.ts answers 403 for /blocked/**: no socket is opened there.
    expect(await rawUpgradeStatus(server.url, '/blocked/x')).toBe(403)
    const client = await wsConnect(`${server.url.replace(/^http/, 'ws')}/live/after-middleware`)
    client.send('ok')
    expect((await client.next()).text).toBe('ok')
    await client.close()
  }, 10_000)

  it('serves the metrics endpoint to loopback clients', async () => {
    const response = await fetch(`${server.url}/_ws-proxy/metrics`)
    expect(response.status).toBe(200)
    expect(await response.text()).toContain('ws_proxy_')
  }, 10_000)

  it('closes proxied connections with 1001 on SIGTERM and exits', async () => {
    const other = await startBuiltFixture('nitro3-app', build.entry, fixtureEnv(upstream))
    const client = await wsConnect(`${other.url.replace(/^http/, 'ws')}/live/shutdown`)
    client.send('before shutdown')
    expect((await client.next()).text).toBe('before shutdown')
    const closes = upstream.closes.length
    const signalled = Date.now()
    other.child.kill('SIGTERM')
    expect(await withTimeout(client.closed, 5000, 'client close on SIGTERM')).toMatchObject({ code: 1001 })
    const exit = await withTimeout(other.exited, 10_000, 'server exit after SIGTERM')
    expect(Date.now() - signalled).toBeLessThan(10_000)
    expect(exit.signal === null ? exit.code : exit.signal).toBe(0)
    await expect.poll(() => upstream.closes.length, { timeout: 3000 }).toBeGreaterThan(closes)
  }, 30_000)
})

describe('Nitro 3: nitro dev', () => {
  let upstream: Upstream
  let server: FixtureServer

  beforeAll(async () => {
    upstream = await startFixtureUpstream()
    server = await startDevFixture('nitro3-app', { ...fixtureEnv(upstream), WS_PROXY_FIXTURE_BUILD_DIR: '.nitro/dev-test' })
  }, 150_000)

  afterAll(async () => {
    if (process.env.WS_PROXY_LINES_DEBUG && server) console.log(`--- nitro dev output ---\n${server.output()}`)
    await server?.stop()
  }, 15_000)

  it('relays text and binary frames through the dev server', async () => {
    const before = upstream.handshakes.length
    const client = await wsConnect(`${server.url.replace(/^http/, 'ws')}/live/dev?x=1`, { timeout: 5000 })
    client.send('text via dev')
    const text = await client.next()
    expect([text.isBinary, text.text]).toEqual([false, 'text via dev'])
    const bytes = Buffer.from([0, 1, 2, 253, 254, 255])
    client.send(bytes)
    const binary = await client.next()
    expect(binary.isBinary).toBe(true)
    expect(Buffer.compare(binary.data, bytes)).toBe(0)
    await client.close()
    expect(upstream.handshakes.slice(before).map(h => h.url)).toEqual(['/echo/dev?x=1'])
  }, 15_000)

  describeProxyBehaviour('Nitro 3 dev', () => ({ url: server.url, upstream }))

  describeRuntimeImports(() => server.url)
})
