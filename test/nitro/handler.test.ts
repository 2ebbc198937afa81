/**
 * The runtime handler factory in isolation: a stub core records what it is given, so the
 * mapping under an app `baseURL`, the auth hook point and misconfiguration can be checked
 * without a server.
 */
import { describe, expect, it, vi } from 'vitest'
import type { WebSocketProxy, WebSocketProxyOptions } from '../../src/core/types'
import { defineWsProxyHandler, type RouteAuth } from '../../src/runtime/handler'

function stubCore() {
  const created: WebSocketProxyOptions[] = []
  const proxy = {
    upgrade: vi.fn(async () => undefined),
    open: vi.fn(),
    message: vi.fn(),
    close: vi.fn(),
    error: vi.fn(),
    stats: vi.fn(),
    closeAll: vi.fn(async () => {}),
  } as unknown as WebSocketProxy
  return { created, proxy, createWebSocketProxy: (options: WebSocketProxyOptions) => (created.push(options), proxy) }
}

function hooksOf(handler: unknown) {
  return (handler as { __websocket__: Record<string, (...args: any[]) => any> }).__websocket__
}

const request = (url: string, headers: Record<string, string> = {}) => ({ url, headers: new Headers(headers), context: {} as Record<string, any> })

describe('defineWsProxyHandler', () => {
  it('maps below the app baseURL and hands the target to the core through the context', async () => {
    const core = stubCore()
    const hooks = hooksOf(defineWsProxyHandler({
      route: '/live/**',
      name: 'live',
      envPrefix: 'NITRO_WS_PROXY_LIVE_',
      createWebSocketProxy: core.createWebSocketProxy,
      runtimeConfig: { app: { baseURL: '/app/' }, wsProxy: { live: { target: 'ws://up:1/echo/**', headers: { 'x-a': 'b' }, connectTimeout: 5, xForwarded: '' } } },
    }))
    const ok = request('http://h/app/live/x?y=1', { host: 'h' })
    // The result carries the context: crossws 0.4 gives the peer only that one.
    expect(await hooks.upgrade!(ok)).toEqual({ context: ok.context })
    const options = core.created[0]!
    expect(options.connectTimeout).toBe(5)
    const peer = { request: ok, context: ok.context, remoteAddress: '10.0.0.1' }
    expect((options.target as (p: unknown) => string)(peer)).toBe('ws://up:1/echo/x?y=1')
    expect((options.headers as (p: unknown) => Record<string, string>)(peer)).toEqual({
      'x-forwarded-for': '10.0.0.1',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'h',
      'x-a': 'b',
    })

    for (const outside of ['http://h/live/x', 'http://h/application/live/x', 'http://h/app/lively']) {
      const response = await hooks.upgrade!(request(outside))
      expect([outside, response.status]).toEqual([outside, 400])
    }
  })

  it('runs the route auth first and forwards its identity headers', async () => {
    const core = stubCore()
    const check = vi.fn<RouteAuth['check']>()
    const hooks = hooksOf(defineWsProxyHandler({
      route: '/private/**',
      name: 'private',
      envPrefix: 'NITRO_WS_PROXY_PRIVATE_',
      createWebSocketProxy: core.createWebSocketProxy,
      runtimeConfig: { wsProxy: { private: { target: 'ws://up/**' } } },
      auth: { check },
    }))
    check.mockResolvedValueOnce(new Response(null, { status: 401 }))
    expect((await hooks.upgrade!(request('http://h/private/a'))).status).toBe(401)
    expect(core.proxy.upgrade).not.toHaveBeenCalled()

    check.mockResolvedValueOnce({ headers: { 'x-ws-proxy-user': '{"id":1}' } })
    const ok = request('http://h/private/a')
    await hooks.upgrade!(ok)
    const headers = (core.created[0]!.headers as (p: unknown) => Record<string, string>)({ request: ok, context: ok.context })
    expect(headers['x-ws-proxy-user']).toBe('{"id":1}')
  })

  it('answers 500 and logs the env variable when the runtime config is invalid', async () => {
    const core = stubCore()
    const log = vi.spyOn(console, 'error').mockImplementation(() => {})
    const hooks = hooksOf(defineWsProxyHandler({
      route: '/live/**',
      name: 'live',
      envPrefix: 'NUXT_WS_PROXY_LIVE_',
      createWebSocketProxy: core.createWebSocketProxy,
      runtimeConfig: { wsProxy: { live: { target: 'ws://up/**', maxBufferSize: 'big' } } },
    }))
    expect((await hooks.upgrade!(request('http://h/live/x'))).status).toBe(500)
    expect(log).toHaveBeenCalledWith(expect.stringContaining('runtimeConfig.wsProxy.live.maxBufferSize (env NUXT_WS_PROXY_LIVE_MAX_BUFFER_SIZE) of route /live/** must be a non-negative number, got "big"'))
    log.mockRestore()
  })

  it('answers 500 when an env override of headers sets a refused name, naming the header and the variable', async () => {
    const core = stubCore()
    const log = vi.spyOn(console, 'error').mockImplementation(() => {})
    // What `NITRO_WS_PROXY_LIVE_HEADERS='{"Host":"internal","x-a":"b"}'` leaves in runtime config.
    const hooks = hooksOf(defineWsProxyHandler({
      route: '/live/**',
      name: 'live',
      envPrefix: 'NITRO_WS_PROXY_LIVE_',
      createWebSocketProxy: core.createWebSocketProxy,
      runtimeConfig: { wsProxy: { live: { target: 'ws://up/**', headers: { 'x-a': 'b', 'Host': 'internal' } } } },
    }))
    expect((await hooks.upgrade!(request('http://h/live/x'))).status).toBe(500)
    expect(core.created).toHaveLength(0)
    expect(log.mock.calls).toEqual([[
      '[nitro-ws-proxy] runtimeConfig.wsProxy.live.headers.Host (env NITRO_WS_PROXY_LIVE_HEADERS) of route /live/** is not allowed: the upstream host comes from the target URL. Upgrades on /live/** are answered 500 until this is fixed.',
    ]])
    log.mockRestore()
  })
})
