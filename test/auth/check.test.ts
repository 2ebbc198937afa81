/** `RouteAuth.check` and the session expiry timers without servers: request shapes, origins, hook contract, timers. */
import type { AuthRuntimeConfig, RouteAuthAccept } from '../../src/runtime/auth'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { validateAuthRule } from '../../src/nitro/auth-rule'
import { checkOrigin, createRouteAuth, encodeUserHeader } from '../../src/runtime/auth'
import { clearExpiry, scheduleExpiry } from '../../src/runtime/auth/expiry'
import { generatePassword, sessionCookie } from './helpers'

const password = generatePassword()
const user = { id: 'u1', role: 'admin' }
const config: AuthRuntimeConfig = { session: { password } }

function auth(rule: unknown = { session: true }, extra: Partial<AuthRuntimeConfig> = {}) {
  return createRouteAuth('/live/**', validateAuthRule('/live/**', rule), { ...config, ...extra })
}

function request(headers: Record<string, string>, url = 'http://127.0.0.1:3000/live/x?room=1'): Request {
  return new Request(url, { headers: { host: new URL(url).host, ...headers } })
}

async function accepted(result: Promise<Response | RouteAuthAccept>): Promise<RouteAuthAccept> {
  const value = await result
  if (value instanceof Response) throw new Error(`Expected an accept, got ${value.status}`)
  return value
}

async function status(result: Promise<Response | RouteAuthAccept>): Promise<number> {
  const value = await result
  return value instanceof Response ? value.status : 101
}

afterEach(() => {
  vi.useRealTimers()
})

describe('check', () => {
  it('accepts a valid session and describes the upstream handshake', async () => {
    const cookie = await sessionCookie({ user }, { password })
    const result = await accepted(auth().check(request({ cookie })))
    expect(result).toEqual({
      headers: { 'x-ws-proxy-user': JSON.stringify(user) },
      removeHeaders: ['x-ws-proxy-user', 'cookie'],
      expiresAt: undefined,
      expiryReason: 'Session expired',
      user,
    })
  })

  it('reads headers from crossws 0.3 request proxies and plain Node header objects', async () => {
    const cookie = await sessionCookie({ user }, { password })
    const proxyLike = {
      url: 'http://127.0.0.1:3000/live/x',
      get headers() { return new Headers({ host: '127.0.0.1:3000', origin: 'http://127.0.0.1:3000', cookie }) },
    }
    expect(await status(auth().check(proxyLike as unknown as Request))).toBe(101)
    const nodeLike = { url: '/live/x', headers: { host: '127.0.0.1:3000', origin: 'http://127.0.0.1:3000', cookie: ['a=1', cookie] } }
    expect(await status(auth().check(nodeLike as unknown as Request))).toBe(101)
    const noHeaders = { url: '/live/x' }
    expect(await status(auth().check(noHeaders as unknown as Request))).toBe(401)
    const broken = { url: 'http://x/', get headers(): Headers { throw new Error('boom') } }
    const errors: unknown[] = []
    expect(await status(auth(undefined, { logError: (m, e) => errors.push(m, e) }).check(broken as unknown as Request))).toBe(500)
    expect(errors[0]).toContain('Authentication failed unexpectedly')
  })

  it('uses the first cookie of the configured name', async () => {
    const good = await sessionCookie({ user }, { password, name: 'nuxt-session' })
    const a = createRouteAuth('/live/**', validateAuthRule('/live/**', true), { session: { password, name: 'nuxt-session' } })
    expect(await status(a.check(request({ cookie: `h3=x; ${good}` })))).toBe(101)
    expect(await status(a.check(request({ cookie: `nuxt-session=bad; ${good}` })))).toBe(401)
    expect(await status(a.check(request({ cookie: `${good.replace('=', '="')}"` })))).toBe(101)
  })

  it('computes expiresAt from maxAge and the seal, and refuses long seals', async () => {
    const createdAt = Date.now() - 1_000
    const cookie = await sessionCookie({ user }, { password, maxAge: 60, createdAt })
    const a = createRouteAuth('/live/**', validateAuthRule('/live/**', true), { session: { password, maxAge: 60 } })
    expect((await accepted(a.check(request({ cookie })))).expiresAt).toBe(createdAt + 60_000)
    // No maxAge configured here: the seal's own ttl (+ iron's 60 s skew) still bounds it.
    const r = await accepted(auth().check(request({ cookie })))
    expect(r.expiresAt).toBeGreaterThan(Date.now() + 110_000)
    expect(r.expiresAt).toBeLessThanOrEqual(Date.now() + 120_000)
    expect(await status(auth().check(request({ cookie: `h3=${'a'.repeat(9000)}` })))).toBe(401)
  })

  it('checks Origin against host with default ports, IPv6 and trustProxy', () => {
    const check = (headers: Record<string, string>, trustProxy = false, allowedOrigins: string[] = []) =>
      checkOrigin(name => headers[name], undefined, { allowedOrigins, trustProxy })
    expect(check({ host: 'example.com' })).toBe(true)
    expect(check({ origin: 'https://example.com', host: 'example.com' })).toBe(true)
    expect(check({ origin: 'https://example.com', host: 'example.com:443' })).toBe(true)
    expect(check({ origin: 'http://example.com', host: 'example.com:80' })).toBe(true)
    expect(check({ origin: 'https://example.com', host: 'example.com:80' })).toBe(false)
    expect(check({ origin: 'http://EXAMPLE.com:8080', host: 'example.COM:8080' })).toBe(true)
    expect(check({ origin: 'http://example.com:8080', host: 'example.com' })).toBe(false)
    expect(check({ origin: 'http://[::1]:3000', host: '[::1]:3000' })).toBe(true)
    expect(check({ origin: 'http://a.example.com', host: 'example.com' })).toBe(false)
    expect(check({ origin: 'http://example.com.evil', host: 'example.com' })).toBe(false)
    expect(check({ origin: 'http://example.com', host: 'evil@example.com' })).toBe(false)
    expect(check({ origin: 'http://example.com', host: 'example.com/x' })).toBe(false)
    expect(check({ origin: 'null', host: 'example.com' })).toBe(false)
    expect(check({ origin: 'garbage', host: 'example.com' })).toBe(false)
    expect(check({ origin: 'chrome-extension://abc', host: 'abc' })).toBe(false)
    expect(check({ origin: 'chrome-extension://abc', host: 'x' }, false, ['chrome-extension://abc'])).toBe(true)
    expect(check({ 'origin': 'https://public.example', 'host': 'internal:3000', 'x-forwarded-host': 'public.example' })).toBe(false)
    expect(check({ 'origin': 'https://public.example', 'host': 'internal:3000', 'x-forwarded-host': 'public.example, internal' }, true)).toBe(true)
    expect(check({ origin: 'http://internal:3000', host: 'internal:3000' }, true)).toBe(true)
    expect(check({ origin: 'http://example.com' })).toBe(false)
  })

  it('escapes non-ASCII in the identity header so it stays a valid, lossless header value', () => {
    const value = { name: 'Zoë 🦊 \u2028', tags: ['ü'], n: 1 }
    const encoded = encodeUserHeader(value)
    expect(encoded).toMatch(/^[\x20-\x7E]+$/)
    expect(JSON.parse(encoded)).toEqual(value)
  })

  it('gives the hook route, request, url, session, user and headers, and applies its decisions', async () => {
    const cookie = await sessionCookie({ user, theme: 'dark' }, { password, maxAge: 60 })
    let seen: any
    const a = auth({ session: true }, {
      session: { password, maxAge: 60 },
      callHook: (name, ctx) => {
        seen = { name, route: ctx.route, path: ctx.url.pathname, query: ctx.url.search, session: ctx.session, user: ctx.user, headers: { ...ctx.headers }, cookie: ctx.request.headers.get('cookie') }
        delete ctx.headers['x-ws-proxy-user']
        ctx.headers['X-Role'] = 'admin'
        ctx.expiresAt = Date.now() + 5_000
      },
    })
    const result = await accepted(a.check(request({ cookie })))
    expect(seen).toMatchObject({
      name: 'ws-proxy:auth',
      route: '/live/**',
      path: '/live/x',
      query: '?room=1',
      session: { data: { user, theme: 'dark' } },
      user,
      headers: { 'x-ws-proxy-user': JSON.stringify(user) },
      cookie,
    })
    expect(typeof seen.session.id).toBe('string')
    expect(result.headers).toEqual({ 'x-role': 'admin' })
    expect(result.removeHeaders).toEqual(['x-role', 'x-ws-proxy-user', 'cookie'])
    expect(result.expiresAt).toBeLessThanOrEqual(Date.now() + 5_000)
  })

  it('maps hook denials to statuses and refuses invalid hook headers or a later expiry', async () => {
    const cookie = await sessionCookie({ user }, { password, maxAge: 60 })
    const run = async (hook: AuthRuntimeConfig['callHook'], errors: string[] = []) => {
      const a = auth({ session: true }, { session: { password, maxAge: 60 }, callHook: hook, logError: m => errors.push(m) })
      return a.check(request({ cookie }))
    }
    const statusOf = async (p: Promise<Response | RouteAuthAccept>) => status(p)
    expect(await statusOf(run((_, ctx) => { ctx.deny = true }))).toBe(403)
    expect(await statusOf(run((_, ctx) => { ctx.deny = { status: 429 } }))).toBe(429)
    expect(await statusOf(run((_, ctx) => { ctx.deny = { status: 200 } }))).toBe(403)
    expect(await statusOf(run((_, ctx) => { ctx.deny = { status: 302 } }))).toBe(403)
    const res = await run((_, ctx) => { ctx.deny = { status: 401, message: 'bad\r\nx-injected: 1' } }) as Response
    expect(await res.text()).toBe('Unauthorized')
    const errors: string[] = []
    expect(await statusOf(run((_, ctx) => { ctx.headers.host = 'evil' }, errors))).toBe(500)
    expect(await statusOf(run((_, ctx) => { ctx.headers['x-a'] = 'line\r\nbreak' }, errors))).toBe(500)
    expect(await statusOf(run((_, ctx) => { ctx.headers['bad name'] = 'x' }, errors))).toBe(500)
    expect(await statusOf(run((_, ctx) => { ctx.headers['x-a'] = '🦊' }, errors))).toBe(500)
    expect(errors).toHaveLength(4)
    const hookError = (detail: string) => `[nitro-ws-proxy] The 'ws-proxy:auth' hook set invalid headers for routeRules['/live/**']: ${detail}; answered 500.`
    expect(errors).toEqual([
      hookError('ctx.headers.host is not allowed: the upstream host comes from the target URL'),
      hookError('ctx.headers.x-a holds characters not allowed in a header value'),
      hookError('ctx.headers["bad name"] is not allowed: a header name is a token of letters, digits and !#$%&\'*+-.^_`|~'),
      hookError('ctx.headers.x-a holds characters not allowed in a header value'),
    ])
    const later = await accepted(run((_, ctx) => { ctx.expiresAt = Date.now() + 3_600_000 }))
    expect(later.expiresAt).toBeLessThanOrEqual(Date.now() + 60_000)
    expect(await statusOf(run((_, ctx) => { ctx.expiresAt = Date.now() - 1 }))).toBe(401)
  })
})

describe('session expiry', () => {
  function fakePeer() {
    return { close: vi.fn() }
  }

  it('closes with 1008 at expiry, chaining timers past the setTimeout limit, and cancels on close', () => {
    vi.useFakeTimers()
    const day = 86_400_000
    const peer = fakePeer()
    scheduleExpiry(peer, {}, Date.now() + 40 * day)
    vi.advanceTimersByTime(25 * day)
    expect(peer.close).not.toHaveBeenCalled()
    vi.advanceTimersByTime(15 * day - 1)
    expect(peer.close).not.toHaveBeenCalled()
    vi.advanceTimersByTime(1)
    expect(peer.close).toHaveBeenCalledWith(1008, 'Session expired')

    const closed = fakePeer()
    const context = {}
    scheduleExpiry(closed, context, Date.now() + 1_000)
    clearExpiry(context)
    vi.advanceTimersByTime(2_000)
    expect(closed.close).not.toHaveBeenCalled()
    expect(vi.getTimerCount()).toBe(0)

    const late = fakePeer()
    scheduleExpiry(late, {}, Date.now() - 1)
    expect(late.close).toHaveBeenCalledWith(1008, 'Session expired')
    expect(vi.getTimerCount()).toBe(0)
  })
})

describe('disabled rules', () => {
  it('accept without a session or password when the rule says session: false', async () => {
    const a = createRouteAuth('/open/**', validateAuthRule('/open/**', false), { session: {} })
    expect(await a.check(request({}))).toEqual({ headers: {}, removeHeaders: [] })
  })
})
