/**
 * Bearer JWTs at the upgrade, through the shipping handler (`defineWsProxyHandler` with
 * `createRouteAuth`) on a real `node:http` server with the real crossws node adapter (0.3 and
 * 0.4), a real `ws` upstream, real RS256 keys served as a JWKS by a local server, and an HS256
 * secret. Every refusal is asserted at the HTTP level and must leave the upstream undialled.
 */
import type { JWTPayload } from 'jose'
import type { AuthRuntimeConfig } from '../../src/runtime/auth'
import { randomBytes } from 'node:crypto'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { encodeUserHeader } from '../../src/runtime/auth'
import {
  captureUnhandledRejections,
  cleanup,
  CROSSWS_LINES,
  rawUpgrade,
  sleep,
  startUpstream,
  waitFor,
  withTimeout,
  wsConnect,
} from '../helpers'
import { startAuthedProxy } from './helpers'
import { forge, makeKey, protocolEntry, sign, startJwksServer, type TestKey, unsecured } from './jwt-helpers'

afterEach(() => cleanup())

const issuer = 'https://id.example.test/'
const audience = 'stream-api'
const claims = { sub: 'user-7', name: 'Zoë 🦊', scope: 'stream', roles: ['ops', 'dev'], iss: issuer, aud: audience }
const secret = randomBytes(32).toString('base64url')
const secretKey = new TextEncoder().encode(secret)
const everyTransport = ['header', 'query:access_token', 'protocol']

type Transport = 'header' | 'query' | 'protocol'
const TRANSPORTS: Transport[] = ['header', 'query', 'protocol']

/** How a raw upgrade carries `token` in `transport`. */
function carry(transport: Transport, token: string, path = '/live/feed'): { path: string, headers: Record<string, string> } {
  if (transport === 'header') return { path, headers: { Authorization: `Bearer ${token}` } }
  if (transport === 'query') return { path: `${path}?room=1&access_token=${encodeURIComponent(token)}`, headers: {} }
  return { path, headers: { 'Sec-WebSocket-Protocol': `chat.v1, ${protocolEntry(token)}` } }
}

/** The control of the refusal tests: the same route lets a good token in, in every transport. */
async function expectAccepted(serverUrl: string, token: string): Promise<void> {
  for (const transport of TRANSPORTS) {
    const { path, headers } = carry(transport, token)
    const res = await rawUpgrade(`${serverUrl}${path}`, headers)
    expect([transport, res.status]).toEqual([transport, 101])
    res.close()
  }
}

let keyA: TestKey
let keyB: TestKey
let impostor: TestKey

beforeAll(async () => {
  ;[keyA, keyB, impostor] = await Promise.all([makeKey('a'), makeKey('b'), makeKey('a')])
})

/** Every kind of bad token for a route that trusts `keyA` (or the secret), `issuer` and `audience`. */
async function badTokens(trusted: TestKey | Uint8Array): Promise<Array<[string, string]>> {
  const good = await sign(claims, trusted)
  return [
    ['forged payload', forge(good, { ...claims, sub: 'admin', exp: Math.floor(Date.now() / 1000) + 60 })],
    ['signed with another key', await sign(claims, trusted instanceof Uint8Array ? randomBytes(32) : impostor)],
    ['unknown kid', await sign(claims, keyB)],
    ['expired', await sign(claims, trusted, { expiresIn: -60 })],
    ['not yet valid', await sign(claims, trusted, { notBefore: 60 })],
    ['wrong issuer', await sign({ ...claims, iss: 'https://evil.example/' }, trusted)],
    ['wrong audience', await sign({ ...claims, aud: 'other-api' }, trusted)],
    ['no audience', await sign({ ...claims, aud: undefined }, trusted)],
    ['no exp', await sign(claims, trusted, { expiresIn: null })],
    ['alg none', unsecured(claims)],
    ['alg none with a signature', unsecured(claims, true)],
    // The public key used as an HMAC secret ("algorithm confusion").
    ['HS256 signed with the public key', await sign(claims, new TextEncoder().encode(JSON.stringify(keyA.jwk)), { alg: 'HS256', kid: 'a' })],
    ['truncated', good.slice(0, -8)],
    ['cut at a dot', good.split('.').slice(0, 2).join('.')],
    ['garbage', 'not-a-jwt'],
    ['three garbage parts', 'aaa.bbb.ccc'],
    ['empty', ''],
    ['oversized', `${good}${'A'.repeat(9000)}`],
  ]
}

describe.each(CROSSWS_LINES)('jwt auth on crossws %s', (line) => {
  async function setup(jwt: Record<string, unknown> | true, extra: { rule?: Record<string, unknown>, config?: Partial<AuthRuntimeConfig>, options?: Record<string, unknown> } = {}) {
    const rejections = captureUnhandledRejections()
    const upstream = await startUpstream()
    const errors: string[] = []
    const { server, counts } = await startAuthedProxy({
      line,
      upstreamUrl: upstream.url,
      rule: { jwt, ...extra.rule },
      config: { logError: message => errors.push(message), ...extra.config },
      options: extra.options,
    })
    /** Raw upgrade; asserts the status, and that nothing opened or reached the upstream. */
    const expectRejected = async (status: number, headers: Record<string, string | undefined>, path = '/live/feed', what = '') => {
      const [opens, handshakes] = [counts.opens, upstream.handshakes.length]
      const res = await rawUpgrade(`${server.url}${path}`, headers)
      expect([what, res.status], res.statusLine).toEqual([what, status])
      expect(counts.opens).toBe(opens)
      expect(upstream.handshakes).toHaveLength(handshakes)
      return res
    }
    /** After refusals only: nothing was dialled, nothing failed. */
    const settled = async () => {
      await sleep(20)
      expect(upstream.handshakes).toHaveLength(0)
      expect(upstream.connections).toBe(0)
      expect(server.upgradeErrors).toEqual([])
      expect(rejections).toEqual([])
    }
    return { upstream, server, counts, errors, rejections, expectRejected, settled }
  }

  it('answers 401 to every bad token in every transport (JWKS), never dialling the upstream', async () => {
    const jwks = await startJwksServer([keyA.jwk])
    const { server, expectRejected, settled, errors } = await setup({ jwks: jwks.url, issuer, audience, from: everyTransport })
    const cases = await badTokens(keyA)
    for (const transport of TRANSPORTS) {
      for (const [label, token] of cases) {
        const { path, headers } = carry(transport, token)
        const res = await expectRejected(401, headers, path, `${transport}: ${label}`)
        expect(res.body).toBe('Unauthorized')
        expect(res.header('www-authenticate')).toEqual(['Bearer'])
      }
    }
    // No token at all, and another authorization scheme.
    await expectRejected(401, {}, '/live/feed', 'no token')
    await expectRejected(401, { Authorization: `Basic ${btoa('user:pass')}` }, '/live/feed', 'basic auth')
    await settled()
    expect(errors).toEqual([])
    await expectAccepted(server.url, await sign(claims, keyA))
  })

  it('answers 401 to every bad token in every transport (HS256 secret)', async () => {
    const { server, expectRejected, settled, errors } = await setup({ issuer, audience, from: everyTransport }, { config: { jwt: { secret } } })
    const cases = [...await badTokens(secretKey), ['RS256 token', await sign(claims, keyA)] as [string, string]]
    for (const transport of TRANSPORTS) {
      for (const [label, token] of cases) {
        const { path, headers } = carry(transport, token)
        await expectRejected(401, headers, path, `${transport}: ${label}`)
      }
    }
    await settled()
    expect(errors).toEqual([])
    await expectAccepted(server.url, await sign(claims, secretKey))
  })

  it('relays a valid token from the header: the claims go upstream, the Authorization header does not', async () => {
    const jwks = await startJwksServer([keyA.jwk])
    const { server, upstream, rejections } = await setup({ jwks: jwks.url, issuer, audience })
    const token = await sign(claims, keyA)
    const client = await wsConnect(`${server.url}/live/feed?room=1`, {
      headers: { 'authorization': `bearer ${token}`, 'x-ws-proxy-user': '{"sub":"root"}', 'origin': 'https://any.example' },
    })
    client.send('hello')
    expect((await client.next()).text).toBe('hello')
    const { url, headers } = upstream.handshakes[0]!
    expect(url).toBe('/feed?room=1')
    expect(headers.authorization).toBeUndefined()
    const user = JSON.parse(headers['x-ws-proxy-user'] as string) as JWTPayload
    expect(user).toMatchObject({ ...claims, exp: expect.any(Number), iat: expect.any(Number) })
    expect(headers['x-ws-proxy-user']).toBe(encodeUserHeader(user))
    expect(JSON.stringify(headers)).not.toContain(token)
    await client.close()
    expect(rejections).toEqual([])
  })

  it('relays a valid token from the query: the parameter is removed before the upstream URL is mapped', async () => {
    const { server, upstream } = await setup({ from: ['query:access_token', 'query:token'] }, { config: { jwt: { secret } } })
    const token = await sign(claims, secretKey)
    const a = await wsConnect(`${server.url}/live/feed?room=1&access_token=${token}&b=%20x&access_token_hint=1`)
    const b = await wsConnect(`${server.url}/live/feed?token=${token}`)
    await Promise.all([a.close(), b.close()])
    expect(upstream.handshakes.map(h => h.url)).toEqual(['/feed?room=1&b=%20x&access_token_hint=1', '/feed'])
    expect(JSON.stringify(upstream.handshakes)).not.toContain(token)
  })

  it('removes the query token for every pool entry', async () => {
    const pool = [await startUpstream(), await startUpstream()]
    const { server, upstream } = await setup({ from: ['query:access_token'] }, {
      config: { jwt: { secret } },
      // Replaces the helper's target: two entries, taken in turn.
      options: { balance: 'round-robin', target: pool.map(u => `${u.url}/**`) },
    })
    const token = await sign(claims, secretKey)
    const clients = [
      await wsConnect(`${server.url}/live/a?access_token=${token}&n=1`),
      await wsConnect(`${server.url}/live/b?n=2&access_token=${token}`),
    ]
    await Promise.all(clients.map(c => c.close()))
    expect(upstream.handshakes).toHaveLength(0)
    expect(pool.flatMap(u => u.handshakes.map(h => h.url)).sort()).toEqual(['/a?n=1', '/b?n=2'])
    expect(pool.map(u => u.handshakes.length)).toEqual([1, 1])
  })

  it('relays a valid token from the subprotocol: the entry is neither forwarded nor answered', async () => {
    const { server, upstream } = await setup({ from: ['protocol'] }, { config: { jwt: { secret } } })
    const token = await sign(claims, secretKey)
    const plain = await wsConnect(`${server.url}/live/feed`, { protocols: ['chat.v1', protocolEntry(token)] })
    expect(plain.protocol).toBe('chat.v1')
    plain.send('over chat.v1')
    expect((await plain.next()).text).toBe('over chat.v1')
    // Kubernetes' form: the token base64url-encoded, first in the offer.
    const encoded = await wsConnect(`${server.url}/live/feed`, { protocols: [protocolEntry(token, true), 'chat.v2', 'chat.v3'] })
    expect(encoded.protocol).toBe('chat.v2')
    await Promise.all([plain.close(), encoded.close()])
    expect(upstream.handshakes.map(h => h.headers['sec-websocket-protocol'])).toEqual(['chat.v1', 'chat.v2,chat.v3'])
    expect(JSON.stringify(upstream.handshakes)).not.toContain(token.slice(-20))
    // Only the token entry offered: accepted, and nothing answered (browsers then fail the
    // handshake: offer a real subprotocol next to the token).
    const alone = await rawUpgrade(`${server.url}/live/feed`, { 'Sec-WebSocket-Protocol': protocolEntry(token) })
    expect(alone.status).toBe(101)
    expect(alone.header('sec-websocket-protocol')).toEqual([])
    alone.close()
  })

  it('answers 400 to a token sent in two places', async () => {
    const { expectRejected, settled } = await setup({ from: everyTransport }, { config: { jwt: { secret } } })
    const token = await sign(claims, secretKey)
    await expectRejected(400, { Authorization: `Bearer ${token}` }, `/live/feed?access_token=${token}`)
    await expectRejected(400, { 'Sec-WebSocket-Protocol': `${protocolEntry(token)}, ${protocolEntry(token, true)}, chat` })
    await expectRejected(400, {}, `/live/feed?access_token=${token}&access_token=${token}`)
    await settled()
  })

  it('closes the connection with 1008 when the token expires', async () => {
    const { server, upstream, rejections } = await setup({ clockTolerance: 0 }, { config: { jwt: { secret } } })
    const token = await sign(claims, secretKey, { expiresIn: 2 })
    const exp = JSON.parse(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))).exp as number
    const client = await wsConnect(`${server.url}/live/feed`, { headers: { authorization: `Bearer ${token}` } })
    client.send('ping')
    expect((await client.next()).text).toBe('ping')
    const closed = await withTimeout(client.closed, 4_000, 'token expiry close')
    expect(closed).toMatchObject({ code: 1008, reason: 'Token expired' })
    expect(closed.at).toBeGreaterThanOrEqual(exp * 1000)
    await waitFor(() => upstream.connections === 0, { label: 'upstream closed' })
    expect(rejections).toEqual([])
  })

  it('applies requireUser to the claims, and runs the ws-proxy:auth hook with them', async () => {
    const seen: unknown[] = []
    const { server, upstream, expectRejected } = await setup({ from: ['header', 'query:access_token'] }, {
      rule: { requireUser: { roles: 'ops' } },
      config: {
        jwt: { secret },
        callHook: (_name, ctx) => {
          seen.push({ method: ctx.method, session: ctx.session, user: ctx.user, search: ctx.url.search })
          if (ctx.url.searchParams.has('deny')) ctx.deny = { status: 403, message: 'Not your room' }
          ctx.headers['x-sub'] = String((ctx.user as JWTPayload).sub)
        },
      },
    })
    const viewer = await sign({ ...claims, roles: ['viewer'] }, secretKey)
    await expectRejected(401, { Authorization: `Bearer ${viewer}` })
    expect(seen).toEqual([])
    const token = await sign(claims, secretKey)
    const res = await expectRejected(403, {}, `/live/feed?deny=1&access_token=${token}`)
    expect(res.body).toBe('Not your room')
    const client = await wsConnect(`${server.url}/live/feed?room=1&access_token=${token}`)
    await client.close()
    expect(seen).toEqual([
      { method: 'jwt', session: undefined, user: expect.objectContaining(claims), search: '?deny=1' },
      { method: 'jwt', session: undefined, user: expect.objectContaining(claims), search: '?room=1' },
    ])
    expect(upstream.handshakes[0]!.headers['x-sub']).toBe('user-7')
  })

  it('checks Origin only when allowedOrigins is set', async () => {
    const open = await setup(true, { config: { jwt: { secret } } })
    const token = await sign(claims, secretKey)
    const client = await wsConnect(`${open.server.url}/live/feed`, { headers: { authorization: `Bearer ${token}`, origin: 'https://other.example' } })
    await client.close()
    const listed = await setup(true, { rule: { allowedOrigins: ['https://app.example.com'] }, config: { jwt: { secret } } })
    await listed.expectRejected(403, { Authorization: `Bearer ${token}`, Origin: 'https://other.example' })
    const ok = await wsConnect(`${listed.server.url}/live/feed`, { headers: { authorization: `Bearer ${token}`, origin: 'https://app.example.com' } })
    await ok.close()
  })

  it('picks up rotated keys (a new kid), and keeps random kids from refetching within the cooldown', async () => {
    const jwks = await startJwksServer([keyA.jwk])
    const { server, expectRejected } = await setup({ jwks: jwks.url }, { config: { jwks: { cooldown: 0 } } })
    const connect = async (token: string) => (await wsConnect(`${server.url}/live/feed`, { headers: { authorization: `Bearer ${token}` } })).close()
    await connect(await sign(claims, keyA))
    expect(jwks.fetches).toBe(1)
    // An unknown kid fetches the JWKS again (no cooldown here), and is still unknown.
    await expectRejected(401, { Authorization: `Bearer ${await sign(claims, keyB)}` })
    expect(jwks.fetches).toBe(2)
    // The issuer publishes B: the first token naming it fetches the new set.
    jwks.keys = [keyA.jwk, keyB.jwk]
    await connect(await sign(claims, keyB))
    await connect(await sign(claims, keyB, { kid: null }))
    await connect(await sign(claims, keyA))
    expect(jwks.fetches).toBe(3)

    // With the default 30 s cooldown, unknown kids right after a fetch fetch nothing.
    const cooled = await startJwksServer([keyA.jwk])
    const route = await setup({ jwks: cooled.url })
    const ok = await wsConnect(`${route.server.url}/live/feed`, { headers: { authorization: `Bearer ${await sign(claims, keyA)}` } })
    await ok.close()
    for (let i = 0; i < 5; i++) {
      const kid = `random-${i}`
      await route.expectRejected(401, { Authorization: `Bearer ${await sign(claims, { ...keyB, kid })}` })
    }
    expect(cooled.fetches).toBe(1)
  })

  it('stops accepting a retired key once the cached set is fetched again', async () => {
    const jwks = await startJwksServer([keyA.jwk, keyB.jwk])
    const { server, expectRejected } = await setup({ jwks: jwks.url }, { config: { jwks: { cacheMaxAge: 50 } } })
    const tokenA = await sign(claims, keyA)
    await (await wsConnect(`${server.url}/live/feed`, { headers: { authorization: `Bearer ${tokenA}` } })).close()
    jwks.keys = [keyB.jwk]
    await sleep(80)
    await expectRejected(401, { Authorization: `Bearer ${tokenA}` })
    await (await wsConnect(`${server.url}/live/feed`, { headers: { authorization: `Bearer ${await sign(claims, keyB)}` } })).close()
  })

  it('tries each key when a token has no kid and several keys fit', async () => {
    const jwks = await startJwksServer([keyB.jwk, keyA.jwk].map(({ kid: _kid, ...jwk }) => jwk))
    const { server } = await setup({ jwks: jwks.url })
    for (const key of [keyA, keyB]) {
      const client = await wsConnect(`${server.url}/live/feed`, { headers: { authorization: `Bearer ${await sign(claims, key, { kid: null })}` } })
      await client.close()
    }
  })

  it('answers 503 while the JWKS cannot be fetched, logs it once, and recovers', async () => {
    const jwks = await startJwksServer([keyA.jwk])
    jwks.failWith = 500
    const { server, expectRejected, errors } = await setup({ jwks: jwks.url })
    const token = await sign(claims, keyA)
    for (let i = 0; i < 3; i++) {
      const res = await expectRejected(503, { Authorization: `Bearer ${token}` })
      expect(res.body).toBe('Service Unavailable')
    }
    expect(errors).toEqual([`[nitro-ws-proxy] The JWKS of routeRules['/live/**'] (${jwks.url}) could not be fetched (Expected 200 OK from the JSON Web Key Set HTTP response): upgrades are answered 503 until it can. Logged once per outage.`])
    // Garbage and refused algorithms never reach the key source: still 401.
    await expectRejected(401, { Authorization: 'Bearer garbage' })
    await expectRejected(401, { Authorization: `Bearer ${unsecured(claims)}` })
    jwks.failWith = undefined
    const client = await wsConnect(`${server.url}/live/feed`, { headers: { authorization: `Bearer ${token}` } })
    await client.close()
    expect(errors).toHaveLength(1)
  })

  it('answers 503 when the JWKS host refuses connections', async () => {
    const jwks = await startJwksServer([keyA.jwk])
    await jwks.close()
    const { expectRejected, errors } = await setup({ jwks: jwks.url })
    await expectRejected(503, { Authorization: `Bearer ${await sign(claims, keyA)}` })
    expect(errors[0]).toMatch(/could not be fetched \(fetch failed: ECONNREFUSED\): upgrades are answered 503/)
  })

  it('keeps verifying with the keys it has when a refresh fails', async () => {
    const jwks = await startJwksServer([keyA.jwk])
    const { server, errors, expectRejected } = await setup({ jwks: jwks.url }, { config: { jwks: { cacheMaxAge: 50 } } })
    const connect = async () => (await wsConnect(`${server.url}/live/feed`, { headers: { authorization: `Bearer ${await sign(claims, keyA)}` } })).close()
    await connect()
    jwks.failWith = 502
    await sleep(80)
    await connect()
    await connect()
    expect(jwks.fetches).toBe(3)
    expect(errors).toEqual([expect.stringContaining('the keys fetched before keep verifying tokens meanwhile')])
    await expectRejected(401, { Authorization: `Bearer ${await sign(claims, impostor)}` })
  })

  it('HS256/384/512 with the secret by default, only the listed algorithms when set', async () => {
    const all = await setup(true, { config: { jwt: { secret } } })
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      const client = await wsConnect(`${all.server.url}/live/feed`, { headers: { authorization: `Bearer ${await sign(claims, secretKey, { alg })}` } })
      await client.close()
    }
    const only = await setup({ algorithms: ['HS256'] }, { config: { jwt: { secret } } })
    await only.expectRejected(401, { Authorization: `Bearer ${await sign(claims, secretKey, { alg: 'HS512' })}` })
  })

  it('answers 500 and logs once without a usable secret (never an open route)', async () => {
    const { expectRejected, errors } = await setup(true, { config: { jwt: { secret: 'too-short' } } })
    const token = await sign(claims, new TextEncoder().encode('too-short'))
    await expectRejected(500, { Authorization: `Bearer ${token}` })
    await expectRejected(500, {})
    expect(errors).toEqual([
      `[nitro-ws-proxy] routeRules '/live/**' is protected by wsProxy.auth.jwt without jwks but the JWT secret is shorter than 32 bytes. Set NITRO_WS_PROXY_JWT_SECRET to the secret the token issuer signs with (HS256/384/512), at least 32 characters (e.g. \`openssl rand -base64 32\`), or give the rule a jwks URL.`,
    ])
  })
})
