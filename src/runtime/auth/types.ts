import type { SessionConfig } from 'h3'

/** A value `requireUser` can compare with (JSON primitives; `null` is not a requirement). */
export type RequiredUserValue = string | number | boolean

/**
 * The `auth` field of a `wsProxy` route rule, as written in `routeRules`. Serialisable: it ships
 * in plain text in the build output, so it never holds a secret (the password comes from runtime
 * config, see {@link AuthSessionConfig}).
 *
 * @example
 * routeRules: {
 *   '/live/**': {
 *     wsProxy: {
 *       target: 'ws://127.0.0.1:4000',
 *       auth: { session: true, requireUser: { role: ['admin', 'staff'] } },
 *     },
 *   },
 * }
 */
export interface AuthRuleInput {
  /**
   * Require a sealed h3 session cookie whose `data.user` is present and non-empty; otherwise the
   * upgrade is answered 401 and the upstream is never dialled. The only authentication method,
   * so it must be `true` for the other options to apply.
   */
  session: boolean
  /**
   * Origins allowed besides the request's own host (browsers send cookies on cross-site
   * WebSocket upgrades, so every other `Origin` is answered 403). Exact origins only:
   * scheme, host and port, no path, no wildcards.
   * @default []
   * @example ['https://app.example.com', 'http://localhost:3000']
   */
  allowedOrigins?: string[]
  /**
   * Compare `Origin` with the first `x-forwarded-host` value instead of `host`. Only enable it
   * behind a reverse proxy that sets (and overwrites) that header: a client can send it too.
   * Defaults to the runtime config's `trustProxy`, which defaults to `false`.
   */
  trustProxy?: boolean
  /**
   * Values `session.data.user` must hold, by (dotted) property path. A list means "any of"; when
   * the user's value is an array, it must contain one of the required values. Compared with
   * `===`. A user who does not match gets 401.
   * @example { role: ['admin', 'staff'], 'org.id': 42, verified: true }
   */
  requireUser?: Record<string, RequiredUserValue | RequiredUserValue[]>
  /**
   * Header carrying `JSON.stringify(session.data.user)` (non-ASCII escaped as `\uXXXX`) on the
   * upstream handshake; any copy sent by the client is removed. `false` sends no identity.
   * @default 'x-ws-proxy-user'
   */
  userHeader?: string | false
  /**
   * Forward the client's `cookie` header (session cookie included) to the upstream. Off by
   * default because the upstream should trust the identity header, not the browser's cookies.
   * @default false
   */
  forwardCookies?: boolean
}

/** {@link AuthRuleInput} after build-time validation: every field set, origins normalised. */
export interface NormalizedAuthRule {
  /** `false` when the rule disables auth (`auth: false`); the module then creates no check. */
  session: boolean
  /** Normalised origins (`scheme://host[:port]`, lower case, default port dropped). */
  allowedOrigins: string[]
  /** `undefined`: use the runtime config's `trustProxy`. */
  trustProxy?: boolean
  /** Required values, each normalised to a non-empty list. */
  requireUser: Record<string, RequiredUserValue[]>
  /** Lower-case header name, or `false`. */
  userHeader: string | false
  forwardCookies: boolean
}

/**
 * Session options read from runtime config (never from route rules): the same meaning as h3's
 * `useSession` options, so cookies sealed by the app (`useSession`, nuxt-auth-utils) open here.
 */
export interface AuthSessionConfig {
  /** Password the cookie is sealed with; at least 32 characters. */
  password?: string
  /**
   * Cookie name. Nitro default `h3` (h3's default); Nuxt default `nuxt-session`
   * (nuxt-auth-utils' default).
   * @default 'h3'
   */
  name?: string
  /**
   * Session lifetime in seconds from its creation, as in h3. A connection still open when it
   * passes is closed with 1008. `0`/unset: no expiry besides the seal's own.
   */
  maxAge?: number
  /** iron seal options, as in h3 (rarely needed; merged over iron's defaults). */
  seal?: Partial<NonNullable<SessionConfig['seal']>>
}

/** Runtime configuration of {@link createRouteAuth}. */
export interface AuthRuntimeConfig {
  session: AuthSessionConfig
  /**
   * Env variable(s) to name in error messages about the password.
   * @default 'NITRO_WS_PROXY_SESSION_PASSWORD'
   */
  passwordEnv?: string | string[]
  /** Default of the rule's `trustProxy`. @default false */
  trustProxy?: boolean
  /**
   * Invokes app hooks, e.g. `(name, ctx) => nitroApp.hooks.callHook(name, ctx)`. Called with
   * {@link AUTH_HOOK} once the built-in checks passed. Keeps this library free of Nitro.
   */
  callHook?: (name: typeof AUTH_HOOK, ctx: WsProxyAuthContext) => unknown
  /**
   * Milliseconds the hook may take before the upgrade is answered 503: an app hook that never
   * settles must not hang the client. `0` disables the limit.
   * @default 10000
   */
  hookTimeout?: number
  /** Where failures of app code and misconfiguration are reported. @default console.error */
  logError?: (message: string, error?: unknown) => void
}

/** The unsealed h3 session, as `useSession` stores it. */
export interface AuthSession {
  id: string
  createdAt: number
  data: Record<string, unknown>
}

/**
 * What the `ws-proxy:auth` runtime hook receives, after the session, user, origin and
 * `requireUser` checks passed. Mutate it to decide.
 *
 * @example
 * // server/plugins/ws-auth.ts
 * export default defineNitroPlugin((nitroApp) => {
 *   nitroApp.hooks.hook('ws-proxy:auth', async (ctx) => {
 *     if (ctx.route === '/live/**' && !(await canStream(ctx.user))) ctx.deny = { status: 403 }
 *     ctx.headers['x-tenant'] = String((ctx.user as any).tenant)
 *   })
 * })
 */
export interface WsProxyAuthContext {
  /** The route rule pattern, e.g. `'/live/**'`. */
  readonly route: string
  /** The upgrade request (read its headers; its body is empty). */
  readonly request: Request
  /** The request URL (path and query the client asked for). */
  readonly url: URL
  /** The unsealed session. Read-only here: changes are not sealed back. */
  readonly session: AuthSession
  /** `session.data.user`, present and non-empty. */
  readonly user: unknown
  /**
   * Headers added to the upstream handshake. Pre-filled with the identity header (and `cookie`
   * with `forwardCookies`); add, change or delete entries. Client copies of every name here are
   * removed. Names must be HTTP tokens; the same names as in a rule's `headers` are refused
   * (`host`, `connection`, `upgrade`, `sec-websocket-*`, `content-length`, `transfer-encoding`,
   * `te`, `trailer`, `keep-alive`, `proxy-*`): the upgrade is then answered 500.
   */
  headers: Record<string, string>
  /**
   * Set to refuse the connection before any dial: `true` answers 403, `{ status, message }`
   * answers that 4xx status. Leaving it `false` allows.
   * @default false
   */
  deny: boolean | { status?: number, message?: string }
  /**
   * When (ms since epoch) the connection is closed with 1008. Starts at the session's expiry;
   * a hook may only make it earlier.
   */
  expiresAt?: number
}

/** What `check` resolves to when the connection may proceed. */
export interface RouteAuthAccept {
  /** Headers to set on the upstream handshake (lower-case names). */
  headers: Record<string, string>
  /** Lower-case names of client headers that must not reach the upstream. */
  removeHeaders: string[]
  /** When (ms since epoch) to close the connection with 1008; unset when the session has no expiry. */
  expiresAt?: number
  /** `session.data.user`. */
  user?: unknown
}

/** The per-route authenticator returned by {@link createRouteAuth}. */
export interface RouteAuth {
  /** The route rule pattern. */
  readonly route: string
  /**
   * Never throws or rejects. Resolves to a `Response` (401/403, 500 on misconfiguration or a
   * failing hook, 503 on a hook timeout) to reject, else what to add to the upstream handshake.
   */
  check: (request: Request) => Promise<Response | RouteAuthAccept>
}

/** Name of the Nitro runtime hook called on authenticated upgrades. */
export const AUTH_HOOK = 'ws-proxy:auth' as const

/** Default identity header. */
export const DEFAULT_USER_HEADER = 'x-ws-proxy-user'

/** Minimum password length (iron's own minimum). */
export const MIN_PASSWORD_LENGTH = 32

/** Env variable holding the password in a Nitro app. */
export const NITRO_PASSWORD_ENV = 'NITRO_WS_PROXY_SESSION_PASSWORD'

/** Env variable holding the password in a Nuxt app (falls back to {@link NUXT_SESSION_PASSWORD_ENV}). */
export const NUXT_PASSWORD_ENV = 'NUXT_WS_PROXY_SESSION_PASSWORD'

/** nuxt-auth-utils' password variable, used in Nuxt when {@link NUXT_PASSWORD_ENV} is unset. */
export const NUXT_SESSION_PASSWORD_ENV = 'NUXT_SESSION_PASSWORD'
