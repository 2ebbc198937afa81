/**
 * Session authentication on a real built app (Nitro node-server build, Nuxt build with
 * nuxt-auth-utils): the app's own login route sets the session, then every way an upgrade on
 * `'/private/**'` can fail is answered with its status before the upstream is dialled.
 * Rejections are asserted at the HTTP level (raw upgrade requests).
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { generatePassword, sessionCookie } from '../auth/helpers'
import { rawUpgrade, sleep, type Upstream, wsConnect } from '../helpers'
import { withTimeout } from '../helpers/wait'
import { type ChildEnv, type ChildServer, runBuiltServer, startBuiltServer } from './harness'

/** A running built app and what the suite needs to start variants of it. */
export interface AuthApp {
  /** `http://127.0.0.1:<port>` of the running server. */
  url: string
  upstream: Upstream
  /** The build's server entry (`…/server/index.mjs`), to start it with other env. */
  entry: string
  /** Env the running server was started with (targets and password). */
  env: ChildEnv
  /** The session password the app was started with. */
  password: string
  /** Session cookie name (`h3` in Nitro, `nuxt-session` with nuxt-auth-utils). */
  cookieName: string
  /** POST route of the app that seals the JSON body into the session. */
  loginPath: string
  /** Env variable setting the session max age (seconds) for the app and the proxy. */
  maxAgeEnv: string
  /** Env that leaves the server with no session password. */
  noPasswordEnv: ChildEnv
  /** Env variable(s) the start failure must name, as the message spells them. */
  passwordEnvText: string
  /** Build output directories that must not contain the password. */
  outputDirs: () => string[]
  /** A GET route whose answer carries the public runtime config. */
  publicConfigPath: string
  /** Everything the running server printed, when available. */
  output?: () => string
}

export interface AuthSuiteOptions {
  /** The app has the `/admin/**` (requireUser), `/open/**` (auth: false) rules and the hook plugin. */
  extras?: boolean
}

const user = { id: 7, name: 'Zoë' }

/** POST `body` to the app's login route; resolves the session cookie as `name=value`. */
export async function login(appUrl: string, app: AuthApp, body: Record<string, unknown>): Promise<string> {
  const response = await fetch(`${appUrl}${app.loginPath}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  expect(response.status).toBe(200)
  const cookie = response.headers.getSetCookie().map(c => c.split(';')[0]!).find(c => c.startsWith(`${app.cookieName}=`))
  expect(cookie, `set-cookie of ${app.loginPath}`).toBeDefined()
  return cookie!
}

/** Change one character inside the seal's encrypted part (the MAC must catch it). */
function tamper(cookie: string): string {
  const eq = cookie.indexOf('=')
  const parts = decodeURIComponent(cookie.slice(eq + 1)).split('*')
  const encrypted = parts[4]!
  const i = Math.floor(encrypted.length / 2)
  parts[4] = encrypted.slice(0, i) + (encrypted[i] === 'A' ? 'B' : 'A') + encrypted.slice(i + 1)
  return `${cookie.slice(0, eq)}=${parts.join('*')}`
}

function truncate(cookie: string): string {
  const eq = cookie.indexOf('=')
  const seal = cookie.slice(eq + 1)
  return `${cookie.slice(0, eq)}=${seal.slice(0, Math.floor(seal.length / 2))}`
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true })
  return entries.filter(e => e.isFile()).map(e => join(e.parentPath, e.name))
}

export function describeSessionAuth(label: string, getApp: () => AuthApp, options: AuthSuiteOptions = {}) {
  describe(`${label}: session auth`, () => {
    const ws = (base: string, path: string) => base.replace(/^http/, 'ws') + path

    /** Raw upgrade on `base`: asserts `status`, and that the upstream saw no new connection. */
    async function expectRefused(base: string, path: string, headers: Record<string, string | undefined>, status: number, what: string) {
      const { upstream } = getApp()
      const handshakes = upstream.handshakes.length
      const connections = upstream.connections
      const res = await rawUpgrade(ws(base, path), headers, { timeout: 3000 })
      expect([what, res.status], res.statusLine).toEqual([what, status])
      await sleep(30)
      expect([what, upstream.handshakes.length]).toEqual([what, handshakes])
      expect([what, upstream.connections]).toEqual([what, connections])
    }

    it('proxies with the cookie the login route set; the upstream gets the user, never a client copy or the cookie', async () => {
      const app = getApp()
      const cookie = await login(app.url, app, { user })
      const before = app.upstream.handshakes.length
      const client = await wsConnect(ws(app.url, '/private/room?x=1'), {
        headers: { cookie, 'origin': app.url, 'x-ws-proxy-user': '{"id":1,"name":"root"}' },
      })
      client.send('secret hello')
      expect((await client.next()).text).toBe('secret hello')
      await client.close()
      const [handshake, ...more] = app.upstream.handshakes.slice(before)
      expect(more).toEqual([])
      expect(handshake!.url).toBe('/private/room?x=1')
      expect(handshake!.headers['x-ws-proxy-user']).toBe('{"id":7,"name":"Zo\\u00eb"}')
      expect(JSON.parse(String(handshake!.headers['x-ws-proxy-user']))).toEqual(user)
      expect(handshake!.headers.cookie).toBeUndefined()
    })

    it('answers 401 to every failure mode, the upstream never dialled', async () => {
      const app = getApp()
      const valid = await login(app.url, app, { user })
      const noUser = await login(app.url, app, { theme: 'dark' })
      const emptyUser = await login(app.url, app, { user: {} })
      const otherPassword = await sessionCookie({ user }, { password: generatePassword(), name: app.cookieName })
      const cases: Array<[string, string | undefined]> = [
        ['no cookie', undefined],
        ['empty cookie', `${app.cookieName}=`],
        ['only other cookies', 'theme=dark; other=1'],
        ['sealed with another password', otherPassword],
        ['tampered seal', tamper(valid)],
        ['truncated seal', truncate(valid)],
        ['session without a user', noUser],
        ['session with an empty user', emptyUser],
      ]
      for (const [what, cookie] of cases) {
        await expectRefused(app.url, '/private/room', { cookie, origin: app.url }, 401, what)
      }
      // The valid cookie still works: the refusals were about the cookies.
      const client = await wsConnect(ws(app.url, '/private/after'), { headers: { cookie: valid } })
      await client.close()
      if (app.output) expect(app.output()).not.toMatch(/unhandled|upgrade failed/i)
    })

    it('answers 403 to a cross-site upgrade carrying a valid cookie', async () => {
      const app = getApp()
      const cookie = await login(app.url, app, { user })
      const port = new URL(app.url).port
      for (const origin of ['https://evil.example', `http://127.0.0.1:${Number(port) + 1}`, 'null']) {
        await expectRefused(app.url, '/private/room', { cookie, origin }, 403, origin)
      }
      // The proxy's own host, but named by a spoofed x-forwarded-host: not trusted by default.
      await expectRefused(app.url, '/private/room', { 'cookie': cookie, 'origin': 'https://evil.example', 'x-forwarded-host': 'evil.example' }, 403, 'x-forwarded-host')
    })

    if (options.extras) {
      it('applies requireUser from the rule, and the ws-proxy:auth hook (deny, extra header)', async () => {
        const app = getApp()
        const viewer = await login(app.url, app, { user: { id: 8, role: 'viewer' } })
        await expectRefused(app.url, '/admin/x', { cookie: viewer }, 401, 'requireUser')
        const staff = await login(app.url, app, { user: { id: 9, role: 'staff' } })
        await expectRefused(app.url, '/private/room?deny=1', { cookie: staff }, 403, 'hook deny')

        const before = app.upstream.handshakes.length
        const admin = await wsConnect(ws(app.url, '/admin/x'), { headers: { 'cookie': staff, 'x-user-id': '1' } })
        await admin.close()
        const [handshake] = app.upstream.handshakes.slice(before)
        expect(handshake!.url).toBe('/admin/x')
        expect(handshake!.headers['x-user-id']).toBe('9')
        expect(JSON.parse(String(handshake!.headers['x-ws-proxy-user']))).toEqual({ id: 9, role: 'staff' })
      })

      it('needs no session on a rule with auth: false', async () => {
        const before = getApp().upstream.handshakes.length
        const client = await wsConnect(ws(getApp().url, '/open/x'))
        await client.close()
        const [handshake] = getApp().upstream.handshakes.slice(before)
        expect(handshake!.url).toBe('/open/x')
        expect(handshake!.headers['x-ws-proxy-user']).toBeUndefined()
      })
    }

    describe('with a 2 s session max age', () => {
      let short: ChildServer | undefined

      it('closes a connection with 1008 when the session expires, then refuses the cookie with 401', async () => {
        const app = getApp()
        short = await startBuiltServer(app.entry, { ...app.env, [app.maxAgeEnv]: '2' })
        const loggedInAt = Date.now()
        const cookie = await login(short.url, app, { user })
        const connections = app.upstream.connections
        const client = await wsConnect(ws(short.url, '/private/expiring'), { headers: { cookie } })
        client.send('still here')
        expect((await client.next()).text).toBe('still here')
        const closed = await withTimeout(client.closed, 6000, '1008 close at session expiry')
        expect(closed).toMatchObject({ code: 1008, reason: 'Session expired' })
        expect(closed.at - loggedInAt).toBeGreaterThanOrEqual(1500)
        // The upstream side is closed too.
        await expect.poll(() => app.upstream.connections, { timeout: 3000 }).toBe(connections)
        await expectRefused(short.url, '/private/expiring', { cookie }, 401, 'expired session')
        await short.stop()
      }, 20_000)
    })

    it('refuses to start without a session password, or with one shorter than 32 characters', async () => {
      const app = getApp()
      const none = await runBuiltServer(app.entry, { ...app.env, ...app.noPasswordEnv })
      expect(none.listened, none.output).toBe(false)
      expect(none.code, none.output).not.toBe(0)
      expect(none.output).toMatch(/\[nitro-ws-proxy\] routeRules '\/private\/\*\*'.* (is|are) protected by wsProxy.auth.session but no session password is set\./)
      expect(none.output).toContain(`Set ${app.passwordEnvText} to a random string of at least 32 characters`)

      const shortPassword = generatePassword().slice(0, 20)
      const short = await runBuiltServer(app.entry, { ...app.env, ...app.noPasswordEnv, [app.passwordEnvText.split(' ')[0]!]: shortPassword })
      expect(short.listened, short.output).toBe(false)
      expect(short.code, short.output).not.toBe(0)
      expect(short.output).toContain('but the session password is shorter than 32 characters.')
      expect(short.output).toContain(`Set ${app.passwordEnvText} to`)
      expect(short.output).not.toContain(shortPassword)
    }, 40_000)

    it('keeps the password out of the build output and the public runtime config', async () => {
      const app = getApp()
      const dirs = app.outputDirs()
      let files = 0
      for (const dir of dirs) {
        for (const file of await filesUnder(dir)) {
          files++
          const content = await readFile(file, 'latin1')
          expect(content.includes(app.password), file).toBe(false)
        }
      }
      expect(files).toBeGreaterThan(0)
      const response = await fetch(`${app.url}${app.publicConfigPath}`)
      expect(response.status).toBe(200)
      const text = await response.text()
      expect(text).not.toContain(app.password)
      expect(text).not.toMatch(/wsProxy/)
    })
  })
}
