/**
 * `auth: { hook: true }`: the `ws-proxy:auth` hook alone decides, through the shipping handler on
 * both crossws lines. No user after the hook (or no hook) is a 401; the origin is checked first
 * (the hook may read cookies); the user the hook sets goes upstream in the identity header.
 */
import type { AuthRuntimeConfig, WsProxyAuthContext } from '../../src/runtime/auth'
import { afterEach, describe, expect, it } from 'vitest'
import { captureUnhandledRejections, cleanup, CROSSWS_LINES, rawUpgrade, startUpstream, waitFor, withTimeout, wsConnect } from '../helpers'
import { startAuthedProxy } from './helpers'

afterEach(() => cleanup())

describe.each(CROSSWS_LINES)('hook auth on crossws %s', (line) => {
  async function setup(callHook: AuthRuntimeConfig['callHook'], rule: Record<string, unknown> = {}) {
    const rejections = captureUnhandledRejections()
    const upstream = await startUpstream()
    const errors: string[] = []
    const { server, counts } = await startAuthedProxy({
      line,
      upstreamUrl: upstream.url,
      rule: { hook: true, ...rule },
      config: { callHook, logError: message => errors.push(message), hookTimeout: 200 },
    })
    const expectRejected = async (status: number, headers: Record<string, string | undefined> = {}, path = '/live/feed') => {
      const [opens, handshakes] = [counts.opens, upstream.handshakes.length]
      const res = await rawUpgrade(`${server.url}${path}`, headers)
      expect(res.status, res.statusLine).toBe(status)
      expect(counts.opens).toBe(opens)
      expect(upstream.handshakes).toHaveLength(handshakes)
      return res
    }
    return { server, upstream, errors, rejections, expectRejected }
  }

  /** The app's own "auth library": a cookie naming a known user. */
  const users: Record<string, { id: number, name: string, role: string }> = {
    'tok-zoe': { id: 7, name: 'Zoë', role: 'admin' },
    'tok-max': { id: 8, name: 'Max', role: 'viewer' },
  }
  const cookieHook = (seen: WsProxyAuthContext[] = []): AuthRuntimeConfig['callHook'] => (_name, ctx) => {
    seen.push({ ...ctx })
    const token = /(?:^|;\s*)app=([^;]+)/.exec(ctx.request.headers.get('cookie') ?? '')?.[1]
    if (token && users[token]) ctx.user = users[token]
  }

  it('answers 401 without a hook, or when the hook sets no user', async () => {
    const none = await setup(undefined)
    await none.expectRejected(401, { Cookie: 'app=tok-zoe' })
    const { expectRejected } = await setup(cookieHook())
    for (const cookie of [undefined, 'app=unknown', 'other=tok-zoe']) {
      const res = await expectRejected(401, { Cookie: cookie })
      expect(res.body).toBe('Unauthorized')
    }
  })

  it('lets in the user the hook found, sends it upstream, and gives the hook the request', async () => {
    const seen: WsProxyAuthContext[] = []
    const { server, upstream, rejections } = await setup(cookieHook(seen))
    const client = await wsConnect(`${server.url}/live/feed?room=1`, { headers: { 'cookie': 'theme=dark; app=tok-zoe', 'x-ws-proxy-user': '{"id":0}' } })
    client.send('hi')
    expect((await client.next()).text).toBe('hi')
    await client.close()
    expect(seen).toHaveLength(1)
    expect(seen[0]).toMatchObject({ route: '/live/**', method: 'hook', session: undefined, user: undefined, headers: {}, deny: false, expiresAt: undefined })
    expect(seen[0]!.url.search).toBe('?room=1')
    const { url, headers } = upstream.handshakes[0]!
    expect(url).toBe('/feed?room=1')
    expect(headers['x-ws-proxy-user']).toBe('{"id":7,"name":"Zo\\u00eb","role":"admin"}')
    expect(headers.cookie).toBeUndefined()
    expect(rejections).toEqual([])
  })

  it('applies requireUser to the hook\'s user, and keeps a deny, headers and an expiry it sets', async () => {
    const { server, upstream, expectRejected } = await setup((name, ctx) => {
      cookieHook()!(name, ctx)
      if (ctx.url.searchParams.has('deny')) ctx.deny = { status: 429, message: 'Slow down' }
      ctx.headers['x-ws-proxy-user'] = 'custom'
      ctx.headers['x-user-id'] = String((ctx.user as { id?: number } | undefined)?.id)
      ctx.expiresAt = Date.now() + 600
    }, { requireUser: { role: 'admin' } })
    await expectRejected(401, { Cookie: 'app=tok-max' })
    const res = await expectRejected(429, { Cookie: 'app=tok-zoe' }, '/live/feed?deny=1')
    expect(res.body).toBe('Slow down')
    const client = await wsConnect(`${server.url}/live/feed`, { headers: { cookie: 'app=tok-zoe' } })
    const closed = await withTimeout(client.closed, 3_000, 'hook expiry')
    expect(closed).toMatchObject({ code: 1008, reason: 'Session expired' })
    expect(upstream.handshakes[0]!.headers).toMatchObject({ 'x-ws-proxy-user': 'custom', 'x-user-id': '7' })
    await waitFor(() => upstream.connections === 0, { label: 'upstream closed' })
  })

  it('checks the origin before the hook runs (the hook may read cookies)', async () => {
    const seen: WsProxyAuthContext[] = []
    const { server, expectRejected } = await setup(cookieHook(seen), { allowedOrigins: ['https://app.example.com'] })
    await expectRejected(403, { Cookie: 'app=tok-zoe', Origin: 'https://evil.example' })
    expect(seen).toHaveLength(0)
    const client = await wsConnect(`${server.url}/live/feed`, { headers: { cookie: 'app=tok-zoe', origin: 'https://app.example.com' } })
    await client.close()
    expect(seen).toHaveLength(1)
  })

  it('answers 500 when the hook throws or sets a user JSON cannot encode, 503 when it hangs', async () => {
    const { expectRejected, errors } = await setup((_name, ctx) => {
      if (ctx.url.pathname.endsWith('/throw')) throw new Error('library down')
      if (ctx.url.pathname.endsWith('/bigint')) ctx.user = { id: 1n }
      if (ctx.url.pathname.endsWith('/hang')) return new Promise(() => {})
    })
    await expectRejected(500, {}, '/live/throw')
    await expectRejected(500, {}, '/live/bigint')
    await expectRejected(503, {}, '/live/hang')
    expect(errors).toEqual([
      `[nitro-ws-proxy] The 'ws-proxy:auth' hook failed for routeRules['/live/**']; answered 500.`,
      `[nitro-ws-proxy] The 'ws-proxy:auth' hook set a ctx.user that JSON cannot encode for routeRules['/live/**']; answered 500.`,
      `[nitro-ws-proxy] The 'ws-proxy:auth' hook did not settle within 200 ms for routeRules['/live/**']; answered 503.`,
    ])
  })
})
