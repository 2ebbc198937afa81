/**
 * Session auth at the upgrade, on a real `node:http` server with the real crossws node adapter
 * (0.3 and 0.4), in front of the real core proxy and a real `ws` upstream. Every rejection is
 * asserted at the HTTP level (raw upgrade), and must leave the upstream undialled.
 */
import type { AuthRuntimeConfig } from '../../src/runtime/auth'
import { afterEach, describe, expect, it } from 'vitest'
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
import { generatePassword, sealData, sessionCookie, startAuthedProxy } from './helpers'

afterEach(() => cleanup())

const password = generatePassword()
const otherPassword = generatePassword()
const user = { id: 7, name: 'Zoë 🦊', role: 'admin', roles: ['ops', 'dev'] }

function config(extra: Partial<AuthRuntimeConfig> = {}): AuthRuntimeConfig {
  return { session: { password, name: 'h3' }, ...extra }
}

describe.each(CROSSWS_LINES)('session auth on crossws %s', (line) => {
  async function setup(rule?: unknown, extra?: Partial<AuthRuntimeConfig>) {
    const rejections = captureUnhandledRejections()
    const upstream = await startUpstream()
    const { server, counts } = await startAuthedProxy({ line, upstreamUrl: upstream.url, rule, config: config(extra) })
    const origin = `http://127.0.0.1:${server.port}`
    /** Raw upgrade; asserts the status, that nothing opened and nothing reached the upstream. */
    const expectRejected = async (status: number, headers: Record<string, string | undefined>, path = '/live/feed') => {
      const res = await rawUpgrade(`${server.url}${path}`, headers)
      expect(res.status, res.statusLine).toBe(status)
      await sleep(20)
      expect(counts.opens).toBe(0)
      expect(upstream.handshakes).toHaveLength(0)
      expect(upstream.connections).toBe(0)
      expect(server.upgradeErrors).toEqual([])
      expect(rejections).toEqual([])
      return res
    }
    return { upstream, server, counts, origin, rejections, expectRejected }
  }

  it('answers 401 to every unauthenticated upgrade, never dialling the upstream', async () => {
    const { origin, expectRejected } = await setup({ session: true, requireUser: { role: 'admin' } })
    const valid = await sealData({ user }, { password })
    const cases: Array<[string, string | undefined]> = [
      ['no cookie', undefined],
      ['empty cookie', 'h3='],
      ['only other cookies', 'other=1; theme=dark'],
      ['garbage', 'h3=not-a-seal'],
      ['bad percent-encoding', 'h3=%E0%A4%A'],
      ['other password', await sessionCookie({ user }, { password: otherPassword })],
      ['tampered seal', `h3=${valid.replace(/\*([^*]{10})([^*])/, (_m, a, b) => `*${a}${b === 'A' ? 'B' : 'A'}`)}`],
      ['truncated seal', `h3=${valid.slice(0, -5)}`],
      ['seal cut at a separator', `h3=${valid.split('*').slice(0, 7).join('*')}`],
      ['session without user', await sessionCookie({ theme: 'dark' }, { password })],
      ['empty user object', await sessionCookie({ user: {} }, { password })],
      ['null user', await sessionCookie({ user: null }, { password })],
      ['user missing a required field', await sessionCookie({ user: { id: 1 } }, { password })],
      ['user with another required value', await sessionCookie({ user: { id: 1, role: 'viewer' } }, { password })],
      ['session sealed for another cookie name', await sessionCookie({ user }, { password, name: 'nuxt-session' })],
    ]
    for (const [label, cookie] of cases) {
      const res = await expectRejected(401, { Origin: origin, Cookie: cookie })
      expect(res.body, label).toBe('Unauthorized')
    }
  })

  it('answers 401 to an expired session (h3 maxAge) and to an expired seal (iron ttl)', async () => {
    const { origin, expectRejected } = await setup(undefined, { session: { password, name: 'h3', maxAge: 60 } })
    const oldSession = await sessionCookie({ user }, { password, maxAge: 60, createdAt: Date.now() - 61_000 })
    await expectRejected(401, { Origin: origin, Cookie: oldSession })
    // Sealed 10 minutes "ago" with a 60 s ttl: iron refuses it even without our maxAge.
    const oldSeal = await sessionCookie({ user }, { password, maxAge: 60, seal: { localtimeOffsetMsec: -600_000 } })
    await expectRejected(401, { Origin: origin, Cookie: oldSeal })
  })

  it('answers 403 to a cross-site upgrade carrying a valid session', async () => {
    const { expectRejected, server } = await setup({ session: true, allowedOrigins: ['https://app.example.com'] })
    const cookie = await sessionCookie({ user }, { password })
    for (const origin of ['https://evil.example', 'null', `http://127.0.0.1:${server.port + 1}`, `http://localhost:${server.port}`]) {
      const res = await expectRejected(403, { Origin: origin, Cookie: cookie })
      expect(res.body).toBe('Forbidden')
    }
    // A spoofed x-forwarded-host is ignored without trustProxy.
    await expectRejected(403, { 'Origin': 'https://evil.example', 'X-Forwarded-Host': 'evil.example', 'Cookie': cookie })
  })

  it('accepts a valid session and hands the user (not a spoofed copy) to the upstream', async () => {
    const { origin, upstream, counts, rejections } = await setup({ session: true, requireUser: { 'roles': 'ops', 'role': ['admin', 'staff'] } })
    const cookie = await sessionCookie({ user, theme: 'dark' }, { password })
    const client = await wsConnect(`ws://127.0.0.1:${new URL(origin).port}/live/feed`, {
      headers: { 'origin': origin, 'cookie': `theme=dark; ${cookie}`, 'x-ws-proxy-user': '{"id":0,"role":"root"}' },
    })
    client.send('hello')
    expect((await client.next()).text).toBe('hello')
    expect(counts.opens).toBe(1)
    expect(upstream.handshakes).toHaveLength(1)
    const headers = upstream.handshakes[0]!.headers
    expect(headers['x-ws-proxy-user']).toBe(JSON.stringify(user).replace('ë', '\\u00eb').replace('🦊', '\\ud83e\\udd8a'))
    expect(JSON.parse(headers['x-ws-proxy-user'] as string)).toEqual(user)
    expect(headers.cookie).toBeUndefined()
    expect(rejections).toEqual([])
  })

  it('accepts a listed origin, and a non-browser client without Origin', async () => {
    const { server, upstream } = await setup({ session: true, allowedOrigins: ['https://app.example.com/'] })
    const cookie = await sessionCookie({ user }, { password })
    const a = await wsConnect(`${server.url}/live/a`, { headers: { origin: 'https://APP.example.com:443', cookie } })
    const b = await wsConnect(`${server.url}/live/b`, { headers: { cookie } })
    await Promise.all([a.close(), b.close()])
    expect(upstream.handshakes).toHaveLength(2)
  })

  it('honours x-forwarded-host only with trustProxy', async () => {
    const { server } = await setup({ session: true, trustProxy: true })
    const cookie = await sessionCookie({ user }, { password })
    const client = await wsConnect(`${server.url}/live/a`, {
      headers: { 'origin': 'https://public.example', 'x-forwarded-host': 'public.example, internal', cookie },
    })
    await client.close()
    const res = await rawUpgrade(`${server.url}/live/a`, { 'Origin': 'https://evil.example', 'X-Forwarded-Host': 'public.example', 'Cookie': cookie })
    expect(res.status).toBe(403)
  })

  it('forwards cookies only when asked', async () => {
    const { server, upstream } = await setup({ session: true, forwardCookies: true, userHeader: 'X-User' })
    const cookie = await sessionCookie({ user }, { password })
    const client = await wsConnect(`${server.url}/live/a`, { headers: { cookie: `a=1; ${cookie}` } })
    await client.close()
    const headers = upstream.handshakes[0]!.headers
    expect(headers.cookie).toBe(`a=1; ${cookie}`)
    expect(JSON.parse(headers['x-user'] as string)).toEqual(user)
    expect(headers['x-ws-proxy-user']).toBeUndefined()
  })

  it('lets the ws-proxy:auth hook deny or add upstream headers', async () => {
    const seen: string[] = []
    const { server, upstream, expectRejected } = await setup(undefined, {
      callHook: (name, ctx) => {
        seen.push(`${name} ${ctx.route} ${ctx.url.pathname}`)
        if (ctx.url.pathname === '/live/deny') ctx.deny = { status: 401, message: 'Not today' }
        ctx.headers['x-tenant'] = String((ctx.user as { id: number }).id)
      },
    })
    const cookie = await sessionCookie({ user }, { password })
    const res = await expectRejected(401, { Cookie: cookie }, '/live/deny')
    expect(res.body).toBe('Not today')
    const client = await wsConnect(`${server.url}/live/ok`, { headers: { cookie, 'x-tenant': 'spoofed' } })
    await client.close()
    expect(upstream.handshakes[0]!.headers['x-tenant']).toBe('7')
    expect(JSON.parse(upstream.handshakes[0]!.headers['x-ws-proxy-user'] as string)).toEqual(user)
    expect(seen).toEqual(['ws-proxy:auth /live/** /live/deny', 'ws-proxy:auth /live/** /live/ok'])
  })

  it('answers 500 (not a hang) when the hook throws, 503 when it never settles', async () => {
    const errors: string[] = []
    const { expectRejected } = await setup(undefined, {
      hookTimeout: 50,
      logError: message => errors.push(message),
      callHook: (_name, ctx) => {
        if (ctx.url.pathname === '/live/throw') throw new Error('app bug')
        if (ctx.url.pathname === '/live/reject') return Promise.reject(new Error('app bug'))
        return new Promise(() => {})
      },
    })
    const cookie = await sessionCookie({ user }, { password })
    await expectRejected(500, { Cookie: cookie }, '/live/throw')
    await expectRejected(500, { Cookie: cookie }, '/live/reject')
    await expectRejected(503, { Cookie: cookie }, '/live/hang')
    expect(errors).toHaveLength(3)
    expect(errors.join('\n')).not.toContain(password)
  })

  it('answers 500 and logs once when the password is unusable (never an open route)', async () => {
    const errors: string[] = []
    const { expectRejected } = await setup(undefined, { session: { password: 'too-short' }, logError: message => errors.push(message) })
    await expectRejected(500, {})
    await expectRejected(500, { Cookie: await sessionCookie({ user }, { password: 'too-short'.repeat(4) }) })
    expect(errors).toEqual([expect.stringContaining('NITRO_WS_PROXY_SESSION_PASSWORD')])
    expect(errors[0]).not.toContain('too-short')
  })

  it('closes a connection with 1008 when the session max age passes', async () => {
    const { server, upstream, rejections } = await setup(undefined, { session: { password, name: 'h3', maxAge: 3 } })
    // Created 2.2 s ago with a 3 s max age: about 800 ms left.
    const createdAt = Date.now() - 2_200
    const cookie = await sessionCookie({ user }, { password, maxAge: 3, createdAt })
    const client = await wsConnect(`${server.url}/live/a`, { headers: { cookie } })
    client.send('ping')
    expect((await client.next()).text).toBe('ping')
    const closed = await withTimeout(client.closed, 3_000, 'session expiry close')
    expect(client.messages).toHaveLength(1)
    expect(closed).toMatchObject({ code: 1008, reason: 'Session expired' })
    expect(closed.at).toBeGreaterThanOrEqual(createdAt + 3_000)
    await waitFor(() => upstream.connections === 0, { label: 'upstream closed' })
    expect(rejections).toEqual([])
  })
})
