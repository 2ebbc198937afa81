/**
 * Tokens and the app's own auth in a real `node-server` build (test/fixtures/identity-app): a
 * `jwt` rule whose HS256 secret comes from NITRO_WS_PROXY_JWT_SECRET at runtime, and a `hook`
 * rule decided by the app's `ws-proxy:auth` plugin. Refusals are asserted at the HTTP level.
 */
import { randomBytes } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cleanup, rawUpgrade, sleep, type Upstream, wsConnect } from '../helpers'
import { forge, protocolEntry, sign, unsecured } from '../auth/jwt-helpers'
import { buildNodeServer, type ChildServer, fixtureDir, runBuiltServer, startNodeServer } from './harness'
import { startFixtureUpstream } from './suite'
import { JWT_CHECK_PLUGIN, SESSION_CHECK_PLUGIN } from '../../src/nitro/module'

const rootDir = fixtureDir('identity-app')
const entry = `${rootDir}.output/server/index.mjs`
const secret = randomBytes(32).toString('base64url')
const key = new TextEncoder().encode(secret)
const claims = { sub: 'user-7', name: 'Zoë', iss: 'https://id.identity-app.test/', aud: 'stream' }
let upstream: Upstream
let server: ChildServer | undefined

const env = () => ({
  NITRO_WS_PROXY_TOKEN_TARGET: `${upstream.url}/token/**`,
  NITRO_WS_PROXY_APP_TARGET: `${upstream.url}/app/**`,
  NITRO_WS_PROXY_JWT_SECRET: secret,
})
const ws = (path: string) => `${server!.url.replace(/^http/, 'ws')}${path}`

beforeAll(async () => {
  upstream = await startFixtureUpstream()
  delete process.env.NITRO_WS_PROXY_JWT_SECRET
  await buildNodeServer(rootDir)
  server = await startNodeServer(rootDir, env())
}, 120_000)

afterAll(async () => {
  await server?.stop()
  await cleanup()
})

/** Raw upgrade: asserts `status` and that the upstream saw no new handshake. */
async function expectRefused(path: string, headers: Record<string, string | undefined>, status: number, what: string) {
  const before = upstream.handshakes.length
  const res = await rawUpgrade(ws(path), headers, { timeout: 3000 })
  expect([what, res.status], res.statusLine).toEqual([what, status])
  await sleep(10)
  expect([what, upstream.handshakes.length]).toEqual([what, before])
}

describe('identity-app build: jwt', () => {
  it('relays a valid token from each transport; the token never reaches the upstream', async () => {
    const token = await sign(claims, key)
    const before = upstream.handshakes.length
    const clients = [
      await wsConnect(ws('/token/a?room=1'), { headers: { authorization: `Bearer ${token}` } }),
      await wsConnect(ws(`/token/b?room=1&access_token=${token}`)),
      await wsConnect(ws('/token/c'), { protocols: ['chat.v1', protocolEntry(token)] }),
    ]
    expect(clients[2]!.protocol).toBe('chat.v1')
    clients[0]!.send('hello')
    expect((await clients[0]!.next()).text).toBe('hello')
    await Promise.all(clients.map(c => c.close()))
    const handshakes = upstream.handshakes.slice(before)
    expect(handshakes.map(h => h.url)).toEqual(['/token/a?room=1', '/token/b?room=1', '/token/c'])
    for (const { headers } of handshakes) {
      expect(JSON.parse(headers['x-ws-proxy-user'] as string)).toMatchObject(claims)
      expect(headers['x-sub']).toBe('user-7')
      expect(headers.authorization).toBeUndefined()
    }
    expect(handshakes[2]!.headers['sec-websocket-protocol']).toBe('chat.v1')
    expect(JSON.stringify(handshakes)).not.toContain(token.split('.')[2])
  })

  it('answers 401 to bad tokens in each transport, 400 to two tokens, the hook\'s 403', async () => {
    const good = await sign(claims, key)
    const bad: Array<[string, string]> = [
      ['other secret', await sign(claims, randomBytes(32))],
      ['forged', forge(good, { ...claims, sub: 'admin', exp: Math.floor(Date.now() / 1000) + 60 })],
      ['expired', await sign(claims, key, { expiresIn: -60 })],
      ['not yet valid', await sign(claims, key, { notBefore: 60 })],
      ['wrong audience', await sign({ ...claims, aud: 'other' }, key)],
      ['wrong issuer', await sign({ ...claims, iss: 'https://evil.example/' }, key)],
      ['alg none', unsecured(claims)],
      ['truncated', good.slice(0, -6)],
      ['garbage', 'garbage'],
    ]
    for (const [what, token] of bad) {
      await expectRefused('/token/x', { Authorization: `Bearer ${token}` }, 401, `header: ${what}`)
      await expectRefused(`/token/x?access_token=${encodeURIComponent(token)}`, {}, 401, `query: ${what}`)
      await expectRefused('/token/x', { 'Sec-WebSocket-Protocol': `chat, ${protocolEntry(token)}` }, 401, `protocol: ${what}`)
    }
    await expectRefused('/token/x', {}, 401, 'no token')
    await expectRefused(`/token/x?access_token=${good}`, { Authorization: `Bearer ${good}` }, 400, 'two tokens')
    await expectRefused(`/token/x?deny=1&access_token=${good}`, {}, 403, 'hook deny')
    expect(server!.output()).not.toMatch(/unhandled|upgrade failed/i)
  })
})

describe('identity-app build: hook', () => {
  it('lets in the user the app\'s hook found; refuses no user, a user failing requireUser, another site', async () => {
    const before = upstream.handshakes.length
    const client = await wsConnect(ws('/app/room'), { headers: { cookie: 'demo=zoe', origin: server!.url } })
    await client.close()
    const [handshake] = upstream.handshakes.slice(before)
    expect(handshake!.url).toBe('/app/room')
    expect(handshake!.headers['x-ws-proxy-user']).toBe('{"name":"Zo\\u00eb","active":true}')
    expect(handshake!.headers.cookie).toBeUndefined()
    await expectRefused('/app/room', {}, 401, 'no cookie')
    await expectRefused('/app/room', { Cookie: 'demo=nobody' }, 401, 'unknown user')
    await expectRefused('/app/room', { Cookie: 'demo=max' }, 401, 'inactive user (requireUser)')
    await expectRefused('/app/room', { Cookie: 'demo=zoe', Origin: 'https://evil.example' }, 403, 'cross-site')
  })
})

describe('identity-app build: the JWT secret', () => {
  it('is a private runtime config key with a start check, and no session settings are added', async () => {
    const { createNitro } = await import('nitropack/core')
    const nitro = await createNitro({ rootDir, dev: false, preset: 'node-server', logLevel: 0 })
    try {
      const wsProxy = (nitro.options.runtimeConfig as any).wsProxy
      expect(wsProxy.jwt).toEqual({ secret: '' })
      expect(wsProxy).toMatchObject({ trustProxy: '', hookTimeout: '' })
      expect(wsProxy.session).toBeUndefined()
      expect(JSON.stringify((nitro.options.runtimeConfig as any).public ?? {})).not.toContain('wsProxy')
      expect(nitro.options.plugins.filter(p => p === JWT_CHECK_PLUGIN)).toHaveLength(1)
      expect(nitro.options.plugins).not.toContain(SESSION_CHECK_PLUGIN)
      expect(nitro.options.virtual[JWT_CHECK_PLUGIN]).toContain('routes: ["/token/**"]')
    }
    finally {
      await nitro.close()
    }
  })

  it('refuses to start without a secret, or with one shorter than 32 bytes', async () => {
    const none = await runBuiltServer(entry, { ...env(), NITRO_WS_PROXY_JWT_SECRET: undefined })
    expect(none.listened, none.output).toBe(false)
    expect(none.code, none.output).not.toBe(0)
    expect(none.output).toContain(`[nitro-ws-proxy] routeRules '/token/**' is protected by wsProxy.auth.jwt without jwks but no JWT secret is set. Set NITRO_WS_PROXY_JWT_SECRET to the secret the token issuer signs with (HS256/384/512), at least 32 characters`)
    const shortSecret = randomBytes(12).toString('base64url')
    const short = await runBuiltServer(entry, { ...env(), NITRO_WS_PROXY_JWT_SECRET: shortSecret })
    expect(short.listened, short.output).toBe(false)
    expect(short.output).toContain('but the JWT secret is shorter than 32 bytes.')
    expect(short.output).not.toContain(shortSecret)
  }, 40_000)

  it('keeps the secret out of the build output (it is only set at runtime)', async () => {
    const files = (await readdir(`${rootDir}.output`, { withFileTypes: true, recursive: true })).filter(e => e.isFile())
    expect(files.length).toBeGreaterThan(0)
    for (const file of files) {
      expect((await readFile(join(file.parentPath, file.name), 'latin1')).includes(secret)).toBe(false)
    }
  })
})
