/**
 * The docs/auth.md recipes for the app's own auth (`auth: { hook: true }`), run with the real
 * libraries from npm, offline: Better Auth (memory adapter, a user signed up through its API)
 * and Auth.js (`@auth/core`, JWT sessions, a Credentials provider). Each hook below is the
 * recipe's code; the proxy is the shipping handler on both crossws lines.
 */
import type { AuthRuntimeConfig } from '../../src/runtime/auth'
import { randomBytes } from 'node:crypto'
import { Auth, type AuthConfig } from '@auth/core'
import Credentials from '@auth/core/providers/credentials'
import { betterAuth } from 'better-auth'
import { memoryAdapter } from 'better-auth/adapters/memory'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { cleanup, CROSSWS_LINES, rawUpgrade, startUpstream, wsConnect } from '../helpers'
import { startAuthedProxy } from './helpers'

afterEach(() => cleanup())

/** `name=value; …` from a response's `set-cookie` headers. */
function cookiesOf(response: Response, jar = new Map<string, string>()): string {
  for (const line of response.headers.getSetCookie()) {
    const pair = line.split(';')[0]!
    const eq = pair.indexOf('=')
    jar.set(pair.slice(0, eq), pair.slice(eq + 1))
  }
  return [...jar].map(([name, value]) => `${name}=${value}`).join('; ')
}

// --- Better Auth -------------------------------------------------------------------------
const betterAuthApp = betterAuth({
  database: memoryAdapter({ user: [], session: [], account: [], verification: [] }),
  emailAndPassword: { enabled: true },
  secret: randomBytes(32).toString('base64url'),
  baseURL: 'http://127.0.0.1:3000',
  telemetry: { enabled: false },
})

/** The recipe: Better Auth's session from the upgrade's headers. */
const betterAuthHook: AuthRuntimeConfig['callHook'] = async (_name, ctx) => {
  if (ctx.method !== 'hook') return
  const found = await betterAuthApp.api.getSession({ headers: ctx.request.headers })
  if (!found) return // no user: 401
  ctx.user = { id: found.user.id, name: found.user.name, email: found.user.email }
  ctx.expiresAt = new Date(found.session.expiresAt).getTime()
}

// --- Auth.js (@auth/core) ----------------------------------------------------------------
const authJsConfig: AuthConfig = {
  basePath: '/auth',
  trustHost: true,
  secret: randomBytes(32).toString('base64url'),
  session: { strategy: 'jwt' },
  providers: [
    Credentials({
      credentials: { username: {}, password: {} },
      authorize: async credentials => credentials.password === 'correct horse'
        ? { id: '7', name: String(credentials.username), email: 'zoe@example.com' }
        : null,
    }),
  ],
  callbacks: {
    // Put the user id (the token's `sub`) into the session the proxy reads.
    session: ({ session, token }) => ({ ...session, user: { ...session.user, id: token.sub! } }),
  },
  // Tests only: the refused cookies below are expected, not errors worth printing.
  logger: { error: () => {} },
}

/** The recipe: Auth.js answers its own session endpoint for the upgrade's cookies. */
const authJsHook: AuthRuntimeConfig['callHook'] = async (_name, ctx) => {
  if (ctx.method !== 'hook') return
  const request = new Request(new URL('/auth/session', ctx.url), { headers: { cookie: ctx.request.headers.get('cookie') ?? '' } })
  const session = await (await Auth(request, authJsConfig)).json() as { user?: Record<string, unknown>, expires?: string } | null
  if (!session?.user) return // no user: 401
  ctx.user = session.user
  if (session.expires) ctx.expiresAt = Date.parse(session.expires)
}

/** Sign in through Auth.js' own endpoints (CSRF token, then the Credentials callback). */
async function authJsSignIn(password: string): Promise<string> {
  const jar = new Map<string, string>()
  const base = 'http://127.0.0.1:3000/auth'
  const csrf = await Auth(new Request(`${base}/csrf`), authJsConfig)
  const cookie = cookiesOf(csrf, jar)
  const { csrfToken } = await csrf.json() as { csrfToken: string }
  const signIn = await Auth(new Request(`${base}/callback/credentials`, {
    method: 'POST',
    headers: { 'cookie': cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrfToken, username: 'Zoë', password }),
  }), authJsConfig)
  return cookiesOf(signIn, jar)
}

let betterAuthCookie: string

beforeAll(async () => {
  const signUp = await betterAuthApp.api.signUpEmail({
    body: { email: 'zoe@example.com', password: 'correct horse battery', name: 'Zoë' },
    asResponse: true,
  })
  expect(signUp.status).toBe(200)
  betterAuthCookie = cookiesOf(signUp)
  expect(betterAuthCookie).toMatch(/^better-auth\.session_token=/)
})

describe.each(CROSSWS_LINES)('recipes on crossws %s', (line) => {
  async function setup(callHook: AuthRuntimeConfig['callHook']) {
    const upstream = await startUpstream()
    const { server, counts } = await startAuthedProxy({ line, upstreamUrl: upstream.url, rule: { hook: true }, config: { callHook } })
    const refused = async (cookie: string | undefined, status = 401, origin?: string) => {
      const res = await rawUpgrade(`${server.url}/live/feed`, { Cookie: cookie, Origin: origin })
      expect(res.status, res.statusLine).toBe(status)
    }
    return { server, upstream, counts, refused }
  }

  it('Better Auth: the signed-in user goes upstream; no, bad or signed-out sessions get 401', async () => {
    const { server, upstream, counts, refused } = await setup(betterAuthHook)
    const client = await wsConnect(`${server.url}/live/feed`, { headers: { cookie: betterAuthCookie, origin: server.url.replace(/^ws/, 'http') } })
    client.send('hello')
    expect((await client.next()).text).toBe('hello')
    await client.close()
    const user = JSON.parse(upstream.handshakes[0]!.headers['x-ws-proxy-user'] as string)
    expect(user).toEqual({ id: expect.any(String), name: 'Zoë', email: 'zoe@example.com' })

    await refused(undefined)
    await refused('better-auth.session_token=forged.signature')
    await refused(betterAuthCookie, 403, 'https://evil.example')
    // A second session, signed out through Better Auth: its cookie no longer opens anything.
    const signIn = await betterAuthApp.api.signInEmail({ body: { email: 'zoe@example.com', password: 'correct horse battery' }, asResponse: true })
    const second = cookiesOf(signIn)
    await (await wsConnect(`${server.url}/live/feed`, { headers: { cookie: second } })).close()
    await betterAuthApp.api.signOut({ headers: new Headers({ cookie: second }) })
    await refused(second)
    expect(counts.opens).toBe(2)
    expect(upstream.handshakes).toHaveLength(2)
  })

  it('Auth.js: the signed-in user goes upstream; no or bad sessions get 401', async () => {
    const { server, upstream, counts, refused } = await setup(authJsHook)
    const cookie = await authJsSignIn('correct horse')
    expect(cookie).toContain('authjs.session-token=')
    const client = await wsConnect(`${server.url}/live/feed`, { headers: { cookie } })
    await client.close()
    expect(JSON.parse(upstream.handshakes[0]!.headers['x-ws-proxy-user'] as string)).toEqual({ id: '7', name: 'Zoë', email: 'zoe@example.com' })

    await refused(undefined)
    await refused('authjs.session-token=not-a-jwe')
    // A wrong password signs nobody in: no session cookie, so 401.
    await refused(await authJsSignIn('wrong'))
    expect(counts.opens).toBe(1)
  })
})
