/**
 * `limits.perIp` through the Nitro runtime handler (`defineWsProxyHandler`, mounted the way
 * Nitro's node-server mounts it): with `runtimeConfig.wsProxy.trustProxy` true the address is the
 * last `x-forwarded-for` entry (the one the trusted reverse proxy appended); with it false (or
 * unset) it is the socket's, and a client cannot dodge the cap by sending `x-forwarded-for`.
 */
import type { CrosswsLine } from '../helpers'
import { createApp, createRouter } from 'h3'
import { afterEach, describe, expect, it } from 'vitest'
import { createWebSocketProxy } from '../../src/index'
import { normalizeWsProxyRules } from '../../src/nitro/rules'
import { defineWsProxyHandler, wsProxies } from '../../src/runtime/handler'
import { cleanup, CROSSWS_LINES, startProxy, startUpstream, waitFor, wsConnect, WsWebSocket } from '../helpers'
import { connectFrom, echo, expectRefused, limitsOf } from './harness'

afterEach(() => cleanup())

/**
 * One `routeRules` entry `'/live/**': { wsProxy: { target, limits } }` normalised by the module's
 * `normalizeWsProxyRules`, served by `defineWsProxyHandler` with runtime config after a JSON round
 * trip (as Nitro stores it), on an h3 router fed to the real crossws node adapter.
 */
async function nitroRoute(line: CrosswsLine, limits: Record<string, unknown> | undefined, trustProxy: unknown, runtimeOverrides: Record<string, unknown> = {}) {
  const upstream = await startUpstream()
  const [rule] = normalizeWsProxyRules({ '/live/**': { wsProxy: { target: `${upstream.url}/**`, ...(limits ? { limits } : {}) } } })
  const wsProxy: Record<string, unknown> = { [rule!.name]: { ...rule!.runtime, ...runtimeOverrides } }
  if (trustProxy !== undefined) wsProxy.trustProxy = trustProxy
  const handler = defineWsProxyHandler({
    route: rule!.route,
    name: rule!.name,
    envPrefix: rule!.envPrefix,
    createWebSocketProxy,
    WebSocket: WsWebSocket,
    runtimeConfig: JSON.parse(JSON.stringify({ app: { baseURL: '/' }, wsProxy })),
    dev: false,
  })
  const app = createApp()
  const router = createRouter()
  for (const path of rule!.handlerRoutes) router.use(path, handler)
  app.use('/', router.handler)
  const server = await startProxy({}, { crossws: line, resolve: app.websocket.resolve! })
  const proxy = wsProxies.get('/live/**')!
  return { upstream, server, proxy, url: `${server.url}/live/room` }
}

const xff = (value: string) => ({ 'x-forwarded-for': value })

describe.each(CROSSWS_LINES)('perIp behind a reverse proxy (Nitro runtime handler, crossws %s)', (line) => {
  it('trustProxy true: counts by the last x-forwarded-for entry, whatever the client wrote before it', async () => {
    const { upstream, proxy, url } = await nitroRoute(line, { perIp: 1 }, true)
    const a = await wsConnect(url, { headers: xff('10.9.9.9, 198.51.100.1') })
    await echo(a, 'a')
    expect(limitsOf(proxy)).toEqual({ connections: 1, addresses: 1, users: 0 })
    // Same last hop, different forged prefix: the same address (known at the upgrade: a 429 on both lines).
    await expectRefused(url, 'perIp', upstream, xff('1.2.3.4, 198.51.100.1'))
    await expectRefused(url, 'perIp', upstream, xff(' 198.51.100.1 '))
    // Another last hop: another client behind the trusted proxy, though the same socket address.
    const b = await wsConnect(url, { headers: xff('198.51.100.1, 198.51.100.2') })
    await echo(b, 'b')
    expect(limitsOf(proxy)).toEqual({ connections: 2, addresses: 2, users: 0 })
    expect(proxy.stats().limited.perIp).toBe(2)
    // Without the header: the socket's address (127.0.0.1), a third address.
    const c = await wsConnect(url)
    await echo(c, 'c')
    expect(limitsOf(proxy)).toEqual({ connections: 3, addresses: 3, users: 0 })
    await a.close(1000)
    await waitFor(() => limitsOf(proxy).connections === 2, { label: 'a released' })
    const again = await wsConnect(url, { headers: xff('198.51.100.1') })
    await echo(again, 'again')
  })

  // crossws 0.4's node adapter shows `upgrade` no socket address (see caps.test.ts "perIp").
  it('trustProxy false: counts by the socket address; x-forwarded-for does not dodge the cap', async () => {
    const { upstream, proxy, url } = await nitroRoute(line, { perIp: 2 }, false)
    const a = await wsConnect(url, { headers: xff('198.51.100.1') })
    const b = await wsConnect(url, { headers: xff('198.51.100.2') })
    await echo(a, 'a')
    await echo(b, 'b')
    expect(limitsOf(proxy)).toEqual({ connections: 2, addresses: 1, users: 0 })
    await expectRefused(url, 'perIp', upstream, xff('198.51.100.3'), line)
    await expectRefused(url, 'perIp', upstream, xff('198.51.100.3, 198.51.100.4'), line)
    // Another socket address is another client.
    const other = await connectFrom(url, '127.0.0.2', xff('198.51.100.1'))
    expect(limitsOf(proxy)).toEqual({ connections: 3, addresses: 2, users: 0 })
    other.close()
  })

  it('trustProxy unset (runtime config placeholder \'\'): the socket address', async () => {
    const { upstream, proxy, url } = await nitroRoute(line, { perIp: 1 }, '')
    await echo(await wsConnect(url, { headers: xff('198.51.100.1') }), 'a')
    await expectRefused(url, 'perIp', upstream, xff('198.51.100.2'), line)
    expect(limitsOf(proxy).addresses).toBe(1)
  })

  it('limits set only at runtime, as an env JSON string (NITRO_WS_PROXY_LIVE_LIMITS), apply', async () => {
    const { upstream, proxy, url } = await nitroRoute(line, undefined, undefined, { limits: '{"connections":1}' })
    expect(limitsOf(proxy)).toEqual({ connections: 0, addresses: 0, users: 0 })
    await echo(await wsConnect(url), 'a')
    await expectRefused(url, 'connections', upstream)
    expect(proxy.stats().refused).toEqual({ 429: 1 })
  })
})
