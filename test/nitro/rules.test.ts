/**
 * Build-time rule validation (unit, and a real `nitropack build` that must fail), target
 * mapping and the env naming scheme.
 */
import { snakeCase as sculeSnakeCase } from 'scule'
import type { NitroRuntimeHooks } from 'nitropack/types'
import { describe, expect, expectTypeOf, it } from 'vitest'
import { handlerCode, nameFromRoute, normalizeWsProxyRules, type WsProxyAuthContext } from '../../src/nitro'
import { SESSION_CHECK_PLUGIN } from '../../src/nitro/module'
import { envKey } from '../../src/runtime/env'
import { mapTarget, parseTarget, type ParsedTarget } from '../../src/runtime/target'
import { fixtureDir, runNitroBuildCli } from './harness'

const normalize = (rules: Record<string, Record<string, unknown>>, defaults?: Record<string, unknown>) =>
  normalizeWsProxyRules(rules, defaults)

describe('normalizeWsProxyRules', () => {
  it('reads string and object rules under wsProxy and ws-proxy, skipping other routes and false', () => {
    const rules = normalize({
      '/live/**': { wsProxy: 'ws://up:1/base/**' },
      '/api/live-chat': { 'ws-proxy': { target: 'wss://up/chat', connectTimeout: 5, xForwarded: false } },
      '/off/**': { wsProxy: false },
      '/page': { headers: { a: 'b' } },
    })
    expect(rules.map(r => [r.route, r.name, r.handlerRoutes, r.envPrefix])).toEqual([
      ['/live/**', 'live', ['/live/**', '/live'], 'NITRO_WS_PROXY_LIVE_'],
      ['/api/live-chat', 'apiLiveChat', ['/api/live-chat'], 'NITRO_WS_PROXY_API_LIVE_CHAT_'],
    ])
    expect(rules[1]!.runtime).toMatchObject({ target: 'wss://up/chat', connectTimeout: 5, xForwarded: false, headers: {}, maxBufferSize: '' })
  })

  it('applies module defaults where a rule sets nothing', () => {
    const [rule] = normalize({ '/a': { wsProxy: { target: 'ws://x', heartbeatInterval: 1 } } }, { heartbeatInterval: 5, connectTimeout: 7 })
    expect(rule!.runtime).toMatchObject({ heartbeatInterval: 1, connectTimeout: 7 })
    // Default headers are a rule's headers: the same names are refused, under the rule's route.
    expect(() => normalize({ '/ws': { wsProxy: 'ws://x' } }, { headers: { te: 'trailers' } }))
      .toThrow(`[nitro-ws-proxy] routeRules['/ws'].wsProxy.headers.te is not allowed: hop-by-hop and framing headers belong to one connection and are never forwarded`)
  })

  it.each([
    [{ '/live/**': { wsProxy: { target: 'http://x/**' } } }, `[nitro-ws-proxy] routeRules['/live/**'].wsProxy.target must be a ws://, wss:// or ws+unix: URL, got "http://x/**"`],
    [{ '/live/**': { wsProxy: 'nope' } }, `[nitro-ws-proxy] routeRules['/live/**'].wsProxy.target must be a ws://, wss:// or ws+unix: URL, got "nope"`],
    [{ '/live/**': { 'ws-proxy': { target: 'ws://x', conectTimeout: 1 } } }, `[nitro-ws-proxy] routeRules['/live/**']['ws-proxy'].conectTimeout is not an option; known options: name, auth, target, headers, forwardProtocol, upstreamFirst, passthrough, xForwarded, connectTimeout, maxBufferSize, clientIdleTimeout, highWaterMark, lowWaterMark, maxBufferedAmount, heartbeatInterval, heartbeatTimeout`],
    [{ '/a': { wsProxy: { target: 'ws://x', connectTimeout: -1 } } }, `[nitro-ws-proxy] routeRules['/a'].wsProxy.connectTimeout must be a non-negative number, got -1`],
    [{ '/a': { wsProxy: { target: 'ws://x', xForwarded: 'yes' } } }, `[nitro-ws-proxy] routeRules['/a'].wsProxy.xForwarded must be true or false, got "yes"`],
    [{ '/a': { wsProxy: { target: 'ws://x', headers: { 'sec-websocket-key': 'k' } } } }, `[nitro-ws-proxy] routeRules['/a'].wsProxy.headers.sec-websocket-key is not allowed: the WebSocket client writes the handshake headers itself`],
    [{ '/ws': { wsProxy: { target: 'ws://x', headers: { host: 'internal' } } } }, `[nitro-ws-proxy] routeRules['/ws'].wsProxy.headers.host is not allowed: the upstream host comes from the target URL`],
    [{ '/ws': { wsProxy: { target: 'ws://x', headers: { 'Content-Length': '0' } } } }, `[nitro-ws-proxy] routeRules['/ws'].wsProxy.headers.Content-Length is not allowed: hop-by-hop and framing headers belong to one connection and are never forwarded`],
    [{ '/ws': { wsProxy: { target: 'ws://x', headers: { 'transfer-encoding': 'chunked' } } } }, `[nitro-ws-proxy] routeRules['/ws'].wsProxy.headers.transfer-encoding is not allowed: hop-by-hop and framing headers belong to one connection and are never forwarded`],
    [{ '/ws': { wsProxy: { target: 'ws://x', headers: { 'proxy-authorization': 'Basic x' } } } }, `[nitro-ws-proxy] routeRules['/ws'].wsProxy.headers.proxy-authorization is not allowed: hop-by-hop and framing headers belong to one connection and are never forwarded`],
    [{ '/ws': { wsProxy: { target: 'ws://x', headers: { Connection: 'close' } } } }, `[nitro-ws-proxy] routeRules['/ws'].wsProxy.headers.Connection is not allowed: the WebSocket client writes the handshake headers itself`],
    [{ '/ws': { wsProxy: { target: 'ws://x', headers: { 'x a': '1' } } } }, `[nitro-ws-proxy] routeRules['/ws'].wsProxy.headers["x a"] is not allowed: a header name is a token of letters, digits and !#$%&'*+-.^_\`|~`],
    [{ '/ws': { wsProxy: { target: 'ws://x', headers: { 'x-a': true } } } }, `[nitro-ws-proxy] routeRules['/ws'].wsProxy.headers.x-a must be a string`],
    [{ '/a': { wsProxy: { target: 'ws://x/a/**/b' } } }, `[nitro-ws-proxy] routeRules['/a'].wsProxy.target may only use a wildcard as a trailing /**, got "ws://x/a/**/b"`],
    [{ '/a': { wsProxy: { target: 'ws+unix:/tmp/s.sock/**' } } }, `[nitro-ws-proxy] routeRules['/a'].wsProxy.target with /** must give a request path after the socket (ws+unix:/path/to.sock:/base/**), got "ws+unix:/tmp/s.sock/**"`],
    [{ '/a': { wsProxy: 42 } }, `[nitro-ws-proxy] routeRules['/a'].wsProxy must be a target URL string, an options object or false`],
    [{ '/a/*/b': { wsProxy: 'ws://x' } }, `[nitro-ws-proxy] routeRules['/a/*/b'].wsProxy: the route must be an exact path ('/ws') or a prefix ending with /** ('/live/**'); got '/a/*/b'`],
    [{ '/a': { 'wsProxy': 'ws://x', 'ws-proxy': 'ws://y' } }, `[nitro-ws-proxy] routeRules['/a'] sets both wsProxy and 'ws-proxy': keep one`],
    [{ '/a': { wsProxy: { target: 'ws://x', name: 'a-b' } } }, `[nitro-ws-proxy] routeRules['/a'].wsProxy.name must be letters and digits starting with a letter (e.g. 'liveChat'), got "a-b"`],
    [{ '/session': { wsProxy: 'ws://x' } }, `[nitro-ws-proxy] routeRules['/session'].wsProxy: the name 'session' is reserved (runtimeConfig.wsProxy.session holds other settings); set another \`name\` on this rule`],
    [{ '/live': { wsProxy: 'ws://x' }, '/live/**': { wsProxy: 'ws://y/**' } }, `[nitro-ws-proxy] routeRules['/live/**'].wsProxy: routes '/live' and '/live/**' both get the name 'live' (env NITRO_WS_PROXY_LIVE_*); set a distinct \`name\` on one of them`],
  ])('rejects %j', (rules, message) => {
    expect(() => normalize(rules as Record<string, Record<string, unknown>>)).toThrow(message)
    expect(() => normalize(rules as Record<string, Record<string, unknown>>)).toThrow(TypeError)
  })

  it('validates and normalises auth through the auth rule validator; false and session: false mean none', () => {
    const rules = normalize({
      '/a/**': { wsProxy: { target: 'ws://x/**', auth: true } },
      '/b': { wsProxy: { target: 'ws://x', auth: false } },
      '/c': { wsProxy: { target: 'ws://x', auth: { session: false } } },
    })
    expect(rules.map(r => r.auth?.session)).toEqual([true, undefined, undefined])
    expect(rules[0]!.auth).toMatchObject({ session: true, userHeader: 'x-ws-proxy-user', allowedOrigins: [] })
    expect(rules[0]!.runtime).not.toHaveProperty('auth')
    expect(() => normalize({ '/a': { wsProxy: { target: 'ws://x', auth: { session: true, password: 'x'.repeat(40) } } } }))
      .toThrow(`[nitro-ws-proxy] routeRules['/a'].wsProxy.auth.password must not be set`)
    expect(() => normalize({ '/a': { wsProxy: { target: 'ws://x', auth: 'yes' } } }))
      .toThrow(`[nitro-ws-proxy] routeRules['/a'].wsProxy.auth must be an object like { session: true }, { jwt: { ... } } or { hook: true }, true or false`)
  })

  it('derives names from the static route segments', () => {
    expect(['/live/**', '/api/live-chat/**', '/', '/**', '/v2/Chat', '/2024/x'].map(nameFromRoute))
      .toEqual(['live', 'apiLiveChat', 'root', 'root', 'v2Chat', 'route2024X'])
  })

  it('generates a handler module importing the core, the runtime handler and ws by absolute path', () => {
    const [rule] = normalize({ '/live/**': { wsProxy: 'ws://up/**' } })
    const code = handlerCode(rule!, { coreEntry: '/pkg/dist/index.mjs', runtimeDir: '/pkg/dist/runtime/', useWs: true, envPrefix: 'NITRO_WS_PROXY_LIVE_', framework: 'nitro', dev: false })
    expect(code).toContain(`import { createWebSocketProxy } from "/pkg/dist/index.mjs"`)
    expect(code).toContain(`import { defineWsProxyHandler } from "/pkg/dist/runtime/handler.mjs"`)
    expect(code).toContain(`import { WebSocket } from "/pkg/dist/runtime/ws.mjs"`)
    expect(code).not.toContain('auth/index.mjs')
    const global = handlerCode(rule!, { coreEntry: '/c.mjs', runtimeDir: '/r/', useWs: false, envPrefix: 'X_', framework: 'nitro', dev: false })
    expect(global).not.toContain('ws.mjs')
    expect(global).toContain('WebSocket: undefined')
  })
})

describe('types', () => {
  it('declare the ws-proxy:auth runtime hook on NitroRuntimeHooks', () => {
    expectTypeOf<Parameters<NitroRuntimeHooks['ws-proxy:auth']>[0]>().toEqualTypeOf<WsProxyAuthContext>()
    expectTypeOf<ReturnType<NitroRuntimeHooks['ws-proxy:auth']>>().toEqualTypeOf<void | Promise<void>>()
  })
})

describe('the module in a Nitro instance', () => {
  it('registers a handler per route (bare prefix included) and re-registers on a dev config hot reload', async () => {
    const { createNitro } = await import('nitropack/core')
    const nitro = await createNitro({ rootDir: fixtureDir('nitro-app'), dev: false, preset: 'node-server', logLevel: 0 })
    try {
      const ours = () => nitro.options.handlers.filter(h => String(h.handler).startsWith('#nitro-ws-proxy/'))
      expect(ours().map(h => h.route)).toEqual(['/live/**', '/live', '/fixed', '/plain/**', '/plain', '/private/**', '/private', '/admin/**', '/admin', '/open/**', '/open'])
      expect(nitro.options.experimental.websocket).toBe(true)
      const runtimeConfig = nitro.options.runtimeConfig as any
      expect(Object.keys(runtimeConfig.wsProxy)).toEqual(expect.arrayContaining(['live', 'fixed', 'plain', 'private', 'admin', 'open', 'session']))
      // Session settings: private keys (so NITRO_WS_PROXY_SESSION_* apply), empty at build time.
      expect(runtimeConfig.wsProxy.session).toEqual({ password: '', name: '', maxAge: '' })
      expect(JSON.stringify(runtimeConfig.public ?? {})).not.toContain('wsProxy')
      // The start check: one plugin, for the session-protected routes only (not `auth: false`).
      expect(nitro.options.plugins.filter(p => p === SESSION_CHECK_PLUGIN)).toHaveLength(1)
      const check = nitro.options.virtual[SESSION_CHECK_PLUGIN] as string
      expect(check).toContain('routes: ["/private/**","/admin/**"]')
      expect(check).toContain('framework: "nitro"')
      const handlerOf = (route: string) => {
        const id = String(ours().find(h => h.route === route)!.handler)
        return (nitro.options.virtual[id] as () => string)()
      }
      expect(handlerOf('/private/**')).toContain('createRouteAuth')
      expect(handlerOf('/open/**')).not.toContain('createRouteAuth')
      expect(handlerOf('/open/**')).toContain('auth: undefined')

      // What `nitropack dev` does when routeRules change in nitro.config (runtimeConfig kept).
      await nitro.updateConfig({ routeRules: { '/live/**': { wsProxy: 'ws://127.0.0.1:9/edited/**' } } } as any)
      expect((nitro.options.runtimeConfig as any).wsProxy.live.target).toBe('ws://127.0.0.1:9/edited/**')
      // ... and when runtimeConfig is replaced too.
      await nitro.updateConfig({ routeRules: { '/feed/**': { wsProxy: 'ws://127.0.0.1:9/**' } }, runtimeConfig: { other: 1 } } as any)
      expect(ours().map(h => h.route)).toEqual(['/feed/**', '/feed'])
      expect((nitro.options.runtimeConfig as any).wsProxy.feed.target).toBe('ws://127.0.0.1:9/**')
      expect(Object.keys(nitro.options.virtual).filter(id => id.startsWith('#nitro-ws-proxy/'))).toEqual(['#nitro-ws-proxy/route-0'])
      // No session-protected route any more: no start check.
      expect(nitro.options.plugins).not.toContain(SESSION_CHECK_PLUGIN)
      const virtual = nitro.options.virtual['#nitro-ws-proxy/route-0'] as () => string
      expect(virtual()).toContain('route: "/feed/**"')
    }
    finally {
      await nitro.close()
    }
  }, 30_000)
})

describe('a real build with an invalid rule', () => {
  it('fails `nitropack build` with the route and field', async () => {
    const { code, output } = await runNitroBuildCli(fixtureDir('nitro-invalid'))
    expect(code).not.toBe(0)
    expect(output).toContain(`[nitro-ws-proxy] routeRules['/live/**'].wsProxy.target must be a ws://, wss:// or ws+unix: URL, got "http://127.0.0.1:9/**"`)
  }, 60_000)
})

describe('mapTarget', () => {
  const target = (value: string) => parseTarget(value) as ParsedTarget

  it.each([
    ['ws://h:1/base/**', '/a/b', 'x=1', 'ws://h:1/base/a/b?x=1'],
    ['ws://h:1/base/**', '', 'x=1', 'ws://h:1/base?x=1'],
    ['ws://h:1/base/**', '/', '', 'ws://h:1/base/'],
    ['ws://h:1/**', '/a', '', 'ws://h:1/a'],
    ['ws://h:1/**', '', '', 'ws://h:1'],
    ['ws://h:1/base/**?t=1', '/a', 'x=2', 'ws://h:1/base/a?t=1&x=2'],
    ['ws://h:1/fixed', '/a/b', 'x=1', 'ws://h:1/fixed?x=1'],
    ['wss://h/base/**', '/caf%C3%A9', '', 'wss://h/base/caf%C3%A9'],
    ['ws+unix:/tmp/s.sock:/base/**', '/a', '', 'ws+unix:/tmp/s.sock:/base/a'],
  ])('%s + %s ? %s → %s', (t, suffix, query, expected) => {
    expect(mapTarget(target(t), suffix, query)).toBe(expected)
  })

  it.each([
    '/..', '/../x', '/a/..', '/.', '/a/./b', '/%2e%2e/x', '/%2E%2E', '/.%2e', '/a%2fb', '/a%2Fb', '/a%5cb',
    '//evil', '/a//b', '/@evil', '/a\\b', '/a b', '/a#b', '/%00', '/%zz', 'noslash',
  ])('refuses %j', (suffix) => {
    expect(mapTarget(target('ws://h/base/**'), suffix, '')).toBeUndefined()
  })

  it('refuses a query with a fragment or control characters', () => {
    expect(mapTarget(target('ws://h/base/**'), '/a', 'x=1#y')).toBeUndefined()
    expect(mapTarget(target('ws://h/base/**'), '/a', 'x=\n1')).toBeUndefined()
  })
})

// scule is what Nitro's applyEnv uses to spell env names (a nitropack dependency).
const snakeCase = sculeSnakeCase as (value: string) => string

describe('env names', () => {
  it('match the keys Nitro reads for runtimeConfig.wsProxy.<name>.<option>', () => {
    for (const name of ['live', 'apiLiveChat', 'v2Chat', 'chatV2', 'route2024X', 'myAPIKey', 'a1B2c3']) {
      for (const option of ['target', 'connectTimeout', 'xForwarded', 'maxBufferSize', 'headers']) {
        expect(envKey(name, option)).toBe(snakeCase(`wsProxy_${name}_${option}`).toUpperCase())
      }
    }
    expect(envKey('apiLiveChat', 'connectTimeout')).toBe('WS_PROXY_API_LIVE_CHAT_CONNECT_TIMEOUT')
  })
})
