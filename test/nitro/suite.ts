/**
 * One behaviour suite for every way the module runs (Nitro dev, node-server build, Nuxt build).
 *
 * Each fixture declares the same three rules, with placeholder targets that the tests replace
 * through env variables (so the override feature is exercised on every run):
 * - `'/live/**'`  → `<upstream>/echo/**`              (name `live`)
 * - `'/fixed'`    → `<upstream>/fixed?from=rule`       (name `fixed`, no `/**`)
 * - `'/plain/**'` → `<upstream>/**`, `xForwarded: false`, header `x-static: yes` (name `plain`)
 * - `'/private/**'` → `<upstream>/private/**` with `auth: { session: true }` (name `private`)
 * Session auth is exercised in depth by test/nitro/auth-suite.ts.
 */
import { connect } from 'node:net'
import { describe, expect, it } from 'vitest'
import { startUpstream, type Upstream, wsConnect } from '../helpers'
import { generatePassword, sessionCookie } from '../auth/helpers'
import { sleep, withTimeout } from '../helpers/wait'

/** What the suite needs from a running app. */
export interface RunningApp {
  /** `http://127.0.0.1:<port>` (no trailing slash). */
  url: string
  /** The upstream every rule of the app points at. */
  upstream: Upstream
}

/** Session password of the fixtures' `/private/**` rule: generated per run, never committed. */
export const sessionPassword = generatePassword()

/**
 * Env variables pointing the fixture's rules at `upstream`, with `prefix` (`NITRO_`/`NUXT_`),
 * and the session password: `NITRO_WS_PROXY_SESSION_PASSWORD` in Nitro; in Nuxt the app's own
 * nuxt-auth-utils `NUXT_SESSION_PASSWORD`, which the proxy falls back to.
 */
export function fixtureEnv(upstream: Upstream, prefix = 'NITRO_'): Record<string, string> {
  return {
    [`${prefix}WS_PROXY_LIVE_TARGET`]: `${upstream.url}/echo/**`,
    [`${prefix}WS_PROXY_FIXED_TARGET`]: `${upstream.url}/fixed?from=rule`,
    [`${prefix}WS_PROXY_PLAIN_TARGET`]: `${upstream.url}/**`,
    [`${prefix}WS_PROXY_PRIVATE_TARGET`]: `${upstream.url}/private/**`,
    ...(prefix === 'NUXT_'
      ? { NUXT_SESSION_PASSWORD: sessionPassword }
      : {
          [`${prefix}WS_PROXY_ADMIN_TARGET`]: `${upstream.url}/admin/**`,
          [`${prefix}WS_PROXY_OPEN_TARGET`]: `${upstream.url}/open/**`,
          [`${prefix}WS_PROXY_SESSION_PASSWORD`]: sessionPassword,
        }),
  }
}

/**
 * Start an upstream for a fixture. Like every helper resource it is closed by `cleanup()`,
 * which test files call in their `afterAll` (not after each test: upstreams live for the file).
 */
export function startFixtureUpstream(): Promise<Upstream> {
  return startUpstream()
}

/**
 * Send an upgrade request with a raw, unnormalised request target (a `URL` would resolve `..`
 * and `%2e%2e`) and resolve the status code the server answers (0 if it just closes).
 */
export function rawUpgradeStatus(appUrl: string, rawPath: string, timeout = 3000): Promise<number> {
  const { hostname, port, host } = new URL(appUrl)
  return withTimeout(new Promise<number>((resolve) => {
    const socket = connect(Number(port), hostname)
    let data = ''
    socket.on('error', () => resolve(0))
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1')
      const match = /^HTTP\/1\.1 (\d{3})/.exec(data)
      if (match) {
        resolve(Number(match[1]))
        socket.destroy()
      }
    })
    socket.on('close', () => resolve(0))
    socket.on('connect', () => socket.write([
      `GET ${rawPath} HTTP/1.1`,
      `Host: ${host}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Version: 13',
      '',
      '',
    ].join('\r\n')))
  }), timeout, `answer to GET ${rawPath}`)
}

/** Raw response headers of a successful upgrade on `path`, duplicates kept. */
function rawUpgradeHeaders(appUrl: string, path: string, extra: string[]): Promise<string[]> {
  const { hostname, port, host } = new URL(appUrl)
  return withTimeout(new Promise<string[]>((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    let data = ''
    socket.on('error', reject)
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1')
      const end = data.indexOf('\r\n\r\n')
      if (end !== -1) {
        resolve(data.slice(0, end).split('\r\n'))
        socket.destroy()
      }
    })
    socket.on('connect', () => socket.write([
      `GET ${path} HTTP/1.1`,
      `Host: ${host}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Version: 13',
      ...extra,
      '',
      '',
    ].join('\r\n')))
  }), 3000, `upgrade of ${path}`)
}

export interface SuiteOptions {
  /** Session cookie name the app's auth reads. @default 'h3' (Nitro); Nuxt: 'nuxt-session' */
  sessionCookie?: string
  /**
   * What a plain HTTP request on a proxied route gets. @default 426. Nuxt 5 nightly answers 500:
   * its Nitro v2 compatibility layer swaps the h3 our runtime imports (a known defect, see
   * docs/nuxt.md); asserted as it is so that a fix shows up here.
   */
  plainHttpStatus?: number
  /**
   * The server resolves dot segments before the app sees the request and keeps no raw request
   * target (Nitro 3's `bun` preset: `Bun.serve`). Escapes then never reach the handler: `..`
   * forms leave the route (404), and `/live/./x` is the in-route `/live/x` (proxied to
   * `<base>/x`). Asserted as such instead of the handler's 400s. @default false
   */
  resolvesDotSegments?: boolean
}

/** Define the shared behaviour tests against `getApp()` (available once `beforeAll` ran). */
export function describeProxyBehaviour(label: string, getApp: () => RunningApp, options: SuiteOptions = {}) {
  describe(`${label}: proxy behaviour`, () => {
    const ws = (path: string) => getApp().url.replace(/^http/, 'ws') + path
    const handshakesSince = (count: number) => getApp().upstream.handshakes.slice(count)

    it('relays text and binary frames both ways with their type and bytes', async () => {
      const client = await wsConnect(ws('/live/fidelity'))
      client.send('hello ✓ 🚀')
      const text = await client.next()
      expect(text.isBinary).toBe(false)
      expect(text.text).toBe('hello ✓ 🚀')

      const bytes = Buffer.from([0, 1, 2, 127, 128, 254, 255])
      client.send(bytes)
      const binary = await client.next()
      expect(binary.isBinary).toBe(true)
      expect(Buffer.compare(binary.data, bytes)).toBe(0)

      client.send('send-binary:70000')
      const big = await client.next()
      expect(big.isBinary).toBe(true)
      expect(big.data.length).toBe(70000)
      expect(big.data[69999]).toBe(69999 & 0xFF)
      await client.close()
    })

    it(`answers a plain HTTP request on a proxied route with ${options.plainHttpStatus ?? 426}`, async () => {
      const status = options.plainHttpStatus ?? 426
      const response = await fetch(`${getApp().url}/live/anything`)
      expect(response.status).toBe(status)
      const bare = await fetch(`${getApp().url}/fixed`)
      expect(bare.status).toBe(status)
    })

    it('refuses an upgrade on a path no WebSocket handler serves with 404, nothing dialled', async () => {
      const before = getApp().upstream.handshakes.length
      for (const path of ['/livex', '/fixed/below', '/not-a-proxy']) {
        expect(await rawUpgradeStatus(getApp().url, path)).toBe(404)
      }
      expect(handshakesSince(before)).toEqual([])
    })

    it('negotiates one subprotocol, forwarded to the upstream, with exactly one header', async () => {
      const before = getApp().upstream.handshakes.length
      const client = await wsConnect(ws('/live/proto'), { protocols: ['chat.v2', 'chat.v1'] })
      expect(client.protocol).toBe('chat.v2')
      // An echo first: the upstream handshake has then been made (see the x-forwarded test).
      client.send('proto')
      await client.next()
      await client.close()
      const offered = String(handshakesSince(before)[0]?.headers['sec-websocket-protocol']).split(',').map(p => p.trim())
      expect(offered).toEqual(['chat.v2', 'chat.v1'])

      const lines = await rawUpgradeHeaders(getApp().url, '/live/proto-raw', ['Sec-WebSocket-Protocol: chat.v2, chat.v1'])
      expect(lines[0]).toMatch(/^HTTP\/1\.1 101/)
      const protocolHeaders = lines.filter(line => /^sec-websocket-protocol:/i.test(line))
      expect(protocolHeaders).toEqual([expect.stringMatching(/^sec-websocket-protocol: chat\.v2$/i)])
    })

    it('passes close codes and reasons in both directions', async () => {
      const fromUpstream = await wsConnect(ws('/live/close'))
      fromUpstream.send('close:4001:upstream bye')
      const closed = await withTimeout(fromUpstream.closed, 3000, 'close from upstream')
      expect(closed).toMatchObject({ code: 4001, reason: 'upstream bye' })

      const fromClient = await wsConnect(ws('/live/close-client'))
      fromClient.send('ping')
      await fromClient.next()
      const upstreamCloses = getApp().upstream.closes.length
      await fromClient.close(4002, 'client bye')
      await expect.poll(() => getApp().upstream.closes.slice(upstreamCloses), { timeout: 3000 })
        .toContainEqual({ code: 4002, reason: 'client bye' })
    })

    it('maps wildcard paths and queries under the target base, including the bare prefix', async () => {
      const before = getApp().upstream.handshakes.length
      for (const path of ['/live/a/b?x=1&y=two', '/live?bare=1', '/live/', '/fixed?z=3', '/plain/p/q?r=s']) {
        const client = await wsConnect(ws(path))
        client.send('ok')
        await client.next()
        await client.close()
      }
      expect(handshakesSince(before).map(h => h.url)).toEqual([
        '/echo/a/b?x=1&y=two',
        '/echo?bare=1',
        '/echo/',
        '/fixed?from=rule&z=3',
        '/p/q?r=s',
      ])
    })

    it('refuses path escapes with 400 and never dials the upstream', async () => {
      const before = getApp().upstream.handshakes.length
      const attempts = [
        '/live/../secret',
        '/live/a/../../secret',
        '/live/%2e%2e/secret',
        '/live/%2E%2e/secret',
        '/live/.%2e/secret',
        '/live/a%2f..%2fsecret',
        '/live/a%5csecret',
        '/live//evil.example/x',
        '/live/@evil.example/x',
        '/live/./x',
        '/live/a\\..\\secret',
      ]
      const statuses: Record<string, number> = {}
      for (const path of attempts) statuses[path] = await rawUpgradeStatus(getApp().url, path)
      if (options.resolvesDotSegments) {
        // Resolved by the server first (`\\` is `/` in a WHATWG URL): `/live/./x` is `/live/x`,
        // `/live/a\\..\\secret` is `/live/secret`, both inside the route and its base; every other
        // attempt is refused before or by the handler.
        const inRoute: Record<string, string> = { '/live/./x': '/echo/x', '/live/a\\..\\secret': '/echo/secret' }
        for (const path of attempts) {
          expect([path, statuses[path]]).toEqual([path, inRoute[path] ? 101 : expect.toSatisfy((s: number) => (s >= 400 && s < 500) || s === 0)])
        }
        // Those two may be dialled (or not: the raw client leaves right after its 101); nothing else.
        await sleep(300)
        for (const url of handshakesSince(before).map(h => h.url)) expect(Object.values(inRoute)).toContain(url)
        return
      }
      for (const path of attempts) {
        // 400 from the handler; a server may also refuse a malformed request line itself.
        expect([path, statuses[path]]).toEqual([path, expect.toSatisfy((s: number) => s === 400 || (s >= 400 && s < 500) || s === 0)])
        expect([path, statuses[path]]).not.toEqual([path, 101])
      }
      // The handler's own refusals are 400 (not a router 404 or a generic error).
      expect(statuses['/live/%2e%2e/secret']).toBe(400)
      expect(statuses['/live/../secret']).toBe(400)
      expect(handshakesSince(before)).toEqual([])
    })

    it('sends x-forwarded-* computed by the proxy, never the client copies', async () => {
      const before = getApp().upstream.handshakes.length
      // Each client waits for an echo before closing: a client that closes before the proxy's
      // upstream handshake went out may end the connection with no handshake at all.
      const roundTrip = async (client: Awaited<ReturnType<typeof wsConnect>>) => {
        client.send('xf')
        await client.next()
        await client.close()
      }
      await roundTrip(await wsConnect(ws('/live/xf')))
      await roundTrip(await wsConnect(ws('/live/xf-spoofed'), {
        headers: { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' },
      }))
      await roundTrip(await wsConnect(ws('/plain/xf'), { headers: { 'x-forwarded-for': '6.6.6.6' } }))
      const [honest, spoof, none] = handshakesSince(before).map(h => h.headers)

      const expected = { 'x-forwarded-for': '127.0.0.1', 'x-forwarded-host': new URL(getApp().url).host, 'x-forwarded-proto': 'http' }
      expect(honest).toMatchObject(expected)
      // Also under the dev proxy, which passes client copies on: they never reach the upstream.
      expect(spoof).toMatchObject(expected)
      expect(none!['x-forwarded-for']).toBeUndefined()
      expect(none!['x-forwarded-host']).toBeUndefined()
      expect(none!['x-forwarded-proto']).toBeUndefined()
      expect(none!['x-static']).toBe('yes')
    })

    it('guards an auth rule: 401 without a session, identity upstream with one', async () => {
      const before = getApp().upstream.handshakes.length
      expect(await rawUpgradeStatus(getApp().url, '/private/room')).toBe(401)
      expect(handshakesSince(before)).toEqual([])

      const cookie = await sessionCookie({ user: { id: 7, name: 'Zoë' } }, { password: sessionPassword, name: options.sessionCookie ?? 'h3' })
      const client = await wsConnect(ws('/private/room?x=1'), { headers: { cookie, 'x-ws-proxy-user': '{"id":1}' } })
      client.send('secret hello')
      expect((await client.next()).text).toBe('secret hello')
      await client.close()
      const [handshake] = handshakesSince(before)
      expect(handshake!.url).toBe('/private/room?x=1')
      expect(JSON.parse(String(handshake!.headers['x-ws-proxy-user']))).toEqual({ id: 7, name: 'Zoë' })
      expect(handshake!.headers['x-forwarded-for']).toBe('127.0.0.1')
      expect(handshake!.headers.cookie).toBeUndefined()
    })
  })
}
