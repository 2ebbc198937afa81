/**
 * The Nitro module in a real `node-server` production build: `node .output/server/index.mjs`
 * with the rule targets set by env variables, then the shared behaviour and session auth suites.
 */
import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cleanup, type Upstream, wsConnect } from '../helpers'
import { withTimeout } from '../helpers/wait'
import { buildNodeServer, type ChildServer, fixtureDir, startNodeServer } from './harness'
import { describeSessionAuth } from './auth-suite'
import { describeProxyBehaviour, fixtureEnv, rawUpgradeStatus, sessionPassword, startFixtureUpstream } from './suite'

const rootDir = fixtureDir('nitro-app')
let upstream: Upstream
let server: ChildServer | undefined

beforeAll(async () => {
  upstream = await startFixtureUpstream()
  // No session password at build time: the fixture prerenders '/', and prerendering must not
  // run the password check that stops a server at start.
  delete process.env.NITRO_WS_PROXY_SESSION_PASSWORD
  await buildNodeServer(rootDir)
  server = await startNodeServer(rootDir, fixtureEnv(upstream))
}, 120_000)

afterAll(async () => {
  await server?.stop()
  await cleanup()
})

describeProxyBehaviour('node-server build', () => ({ url: server!.url, upstream }))

describeSessionAuth('node-server build', () => ({
  url: server!.url,
  upstream,
  entry: `${rootDir}.output/server/index.mjs`,
  env: fixtureEnv(upstream),
  password: sessionPassword,
  cookieName: 'h3',
  loginPath: '/login',
  maxAgeEnv: 'NITRO_WS_PROXY_SESSION_MAX_AGE',
  noPasswordEnv: { NITRO_WS_PROXY_SESSION_PASSWORD: undefined },
  passwordEnvText: 'NITRO_WS_PROXY_SESSION_PASSWORD',
  outputDirs: () => [`${rootDir}.output/server`, `${rootDir}.output/public`],
  publicConfigPath: '/public-config',
  output: () => server!.output(),
}), { extras: true })

describe('node-server build: prerendering', () => {
  it('prerenders with a session-protected route and no password (the start check skips prerendering)', async () => {
    expect(await readFile(`${rootDir}.output/public/index.html`, 'utf8')).toBe('nitro-ws-proxy fixture')
  })
})

describe('node-server build: runtime overrides', () => {
  let other: ChildServer | undefined
  afterAll(() => other?.stop())

  it('dials the target set by NITRO_WS_PROXY_<NAME>_TARGET, not the built one', async () => {
    const second = await startFixtureUpstream()
    other = await startNodeServer(rootDir, {
      ...fixtureEnv(upstream),
      NITRO_WS_PROXY_LIVE_TARGET: `${second.url}/second/**`,
    })
    const before = upstream.handshakes.length
    const client = await wsConnect(`${other.url.replace(/^http/, 'ws')}/live/room?x=1`)
    client.send('to the second upstream')
    expect((await client.next()).text).toBe('to the second upstream')
    await client.close()
    expect(second.handshakes.map(h => h.url)).toEqual(['/second/room?x=1'])
    expect(upstream.handshakes.length).toBe(before)
  })

  it('answers 500 and logs the rule when an env override is invalid', async () => {
    await other?.stop()
    other = await startNodeServer(rootDir, { ...fixtureEnv(upstream), NITRO_WS_PROXY_LIVE_TARGET: 'http://nope' })
    expect(await rawUpgradeStatus(other.url, '/live/x')).toBe(500)
    expect(other.output()).toContain('[nitro-ws-proxy] runtimeConfig.wsProxy.live.target (env NITRO_WS_PROXY_LIVE_TARGET) of route /live/** must be a ws://, wss:// or ws+unix: URL, got "http://nope"')
    // Other rules keep working.
    const fixed = await wsConnect(`${other.url.replace(/^http/, 'ws')}/fixed`)
    await fixed.close()
  })

  it('closes proxied connections with 1001 when the server shuts down (SIGTERM)', async () => {
    await other?.stop()
    other = await startNodeServer(rootDir, fixtureEnv(upstream))
    const client = await wsConnect(`${other.url.replace(/^http/, 'ws')}/live/shutdown`)
    client.send('before shutdown')
    await client.next()
    const closes = upstream.closes.length
    await other.stop()
    expect(await withTimeout(client.closed, 5000, 'client close on shutdown')).toMatchObject({ code: 1001 })
    await expect.poll(() => upstream.closes.length, { timeout: 3000 }).toBeGreaterThan(closes)
  })
})
