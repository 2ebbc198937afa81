/**
 * The Nuxt module in a real `nuxi build` output started by @nuxt/test-utils, rule targets set
 * by NUXT_WS_PROXY_<NAME>_TARGET, then the shared behaviour suite, then session auth with
 * nuxt-auth-utils (its `setUserSession` logs in; the proxy reads its cookie and password).
 */
import { join } from 'node:path'
import { setup, url, useTestContext } from '@nuxt/test-utils/e2e'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cleanup, type Upstream } from '../helpers'
import { fixtureDir } from '../nitro/harness'
import { describeSessionAuth } from '../nitro/auth-suite'
import { describeProxyBehaviour, fixtureEnv, sessionPassword, startFixtureUpstream } from '../nitro/suite'

let upstream: Upstream

// Runs before setup()'s own beforeAll, which starts the server with process.env.
beforeAll(async () => {
  upstream = await startFixtureUpstream()
  Object.assign(process.env, fixtureEnv(upstream, 'NUXT_'))
})

afterAll(() => cleanup())

await setup({ rootDir: fixtureDir('nuxt-app'), server: true, build: true })

const appUrl = () => url('/').replace(/\/$/, '')

describe('Nuxt build', () => {
  it('still renders pages', async () => {
    const html = await (await fetch(`${appUrl()}/`)).text()
    expect(html).toContain('nitro-ws-proxy Nuxt fixture')
  })

  it('has no live view: the dev-only `/_ws-proxy/devtools` routes are plain app URLs', async () => {
    // This fixture has no pages/: app.vue renders on every URL (200), as on any unknown path.
    for (const path of ['/_ws-proxy/devtools', '/_ws-proxy/devtools/state']) {
      const body = await (await fetch(`${appUrl()}${path}`)).text()
      expect(body, path).toContain('nitro-ws-proxy Nuxt fixture')
      expect(body, path).not.toContain('WebSocket proxy')
    }
  })
})

describe('useWsProxy() in Nuxt server code', () => {
  it('is auto-imported: stats() per route, with the upstream of a relayed connection', async () => {
    const { wsConnect } = await import('../helpers')
    const client = await wsConnect(`${appUrl().replace(/^http/, 'ws')}/live/stats`)
    client.send('hello')
    expect((await client.next()).text).toBe('hello')
    const stats = await (await fetch(`${appUrl()}/api/ws-stats`)).json() as Record<string, { opened: number, upstreams: Record<string, { opened: number }> }>
    expect(Object.keys(stats).sort()).toEqual(['/fixed', '/live/**', '/plain/**', '/private/**'])
    expect(stats['/live/**']!.opened).toBeGreaterThanOrEqual(1)
    expect(Object.values(stats['/live/**']!.upstreams).some(u => u.opened >= 1)).toBe(true)
    await client.close()
  })
})

describeProxyBehaviour('Nuxt build', () => ({ url: appUrl(), upstream }), { sessionCookie: 'nuxt-session' })

// `nitro` is typed by @nuxt/nitro-server, which is not a dependency here.
const outputDir = () => (useTestContext().nuxt!.options as unknown as { nitro: { output: { dir: string } } }).nitro.output.dir

describeSessionAuth('Nuxt build', () => ({
  url: appUrl(),
  upstream,
  entry: join(outputDir(), 'server/index.mjs'),
  env: fixtureEnv(upstream, 'NUXT_'),
  password: sessionPassword,
  cookieName: 'nuxt-session',
  loginPath: '/api/login',
  // nuxt-auth-utils' runtimeConfig.session.maxAge: the proxy falls back to it.
  maxAgeEnv: 'NUXT_SESSION_MAX_AGE',
  noPasswordEnv: { NUXT_SESSION_PASSWORD: undefined, NUXT_WS_PROXY_SESSION_PASSWORD: undefined },
  passwordEnvText: 'NUXT_WS_PROXY_SESSION_PASSWORD or NUXT_SESSION_PASSWORD',
  outputDirs: () => [join(outputDir(), 'public'), join(outputDir(), 'server')],
  // The page carries the public runtime config (window.__NUXT__.config).
  publicConfigPath: '/',
}))
