import type { SessionConfig } from 'h3'

/** A value `requireUser` can compare with (JSON primitives; `null` is not a requirement). */
export type RequiredUserValue = string | number | boolean

/** Where a token may travel: `'header'`, `'protocol'` or `'query:<name>'` (see {@link JwtRuleInput.from}). */
export type JwtTransport = 'header' | 'protocol' | `query:${string}`

/**
 * The `jwt` method of a rule's `auth`: a bearer token (a signed JWT) checked at the upgrade. The
 * key is either a JWKS URL (`jwks`, asymmetric algorithms) or a shared secret from runtime config
 * (`runtimeConfig.wsProxy.jwt.secret`, env `NITRO_WS_PROXY_JWT_SECRET` / Nuxt
 * `NUXT_WS_PROXY_JWT_SECRET`, HS256/384/512), never from the rule.
 *
 * @example
 * auth: {
 *   jwt: {
 *     jwks: 'https://id.example.com/.well-known/jwks.json',
 *     issuer: 'https://id.example.com/',
 *     audience: 'stream-api',
 *     from: ['header', 'query:access_token', 'protocol'],
 *   },
 * }
 */
export interface JwtRuleInput {
  /**
   * URL of the issuer's JSON Web Key Set (`http:` or `https:`). Fetched by the server on the first
   * token, cached (10 min) and fetched again when a token names an unknown `kid` (at most every
   * 30 s), so rotated keys are picked up. Use `https:` across any network you do not control: whoever
   * can change this response can sign tokens. Unset: tokens are HMAC-signed with the shared
   * secret from runtime config.
   * @example 'https://id.example.com/.well-known/jwks.json'
   */
  jwks?: string
  /**
   * Accepted `iss` value(s). Unset: any issuer. Set it (and `audience`) with a JWKS shared by many
   * applications, or a token minted for another app of the same issuer is accepted here.
   * @example 'https://id.example.com/'
   */
  issuer?: string | string[]
  /**
   * Accepted `aud` value(s): the token's `aud` must contain one. Unset: any audience.
   * @example 'stream-api'
   */
  audience?: string | string[]
  /**
   * Where the token is read, in any order (a request carrying tokens in two places is refused
   * with 400):
   * - `'header'`: `Authorization: Bearer <token>` (CLIs, mobile apps, services);
   * - `'query:<name>'`: a query parameter (browsers), removed from the upstream URL. Query strings
   *   land in access logs and browser history: use short-lived tokens;
   * - `'protocol'`: a subprotocol entry `base64url.bearer.<token>` (browsers; the JWT as is, or
   *   base64url-encoded as Kubernetes does), removed from the offer forwarded upstream and never
   *   answered: offer a real subprotocol next to it.
   * @default ['header']
   * @example ['header', 'query:access_token', 'protocol']
   */
  from?: JwtTransport[]
  /**
   * Accepted signature algorithms. Default: the asymmetric ones jose verifies (`RS*`, `PS*`, `ES*`,
   * `EdDSA`, `Ed25519`) with `jwks`, `HS256`/`HS384`/`HS512` with a secret: a token whose header
   * names another algorithm (`none` included) is refused before any key is looked up.
   * `none` is never accepted; HMAC algorithms need the secret, the others `jwks`.
   * @example ['RS256']
   */
  algorithms?: string[]
  /**
   * Seconds of clock difference allowed when checking `exp` and `nbf`. A connection is closed
   * with 1008 once `exp` + this tolerance passes. 5 s: servers kept by NTP differ by
   * milliseconds; raise it for a token issuer whose clock is off. At most 300.
   * @default 5
   */
  clockTolerance?: number
}

/**
 * The `auth` field of a `wsProxy` route rule, as written in `routeRules`. Serialisable: it ships
 * in plain text in the build output, so it never holds a secret (session password and JWT
 * secret come from runtime config). Name exactly one method: `session`, `jwt` or `hook`.
 *
 * @example
 * routeRules: {
 *   // A sealed h3 session cookie (nuxt-auth-utils' too).
 *   '/live/**': { wsProxy: { target: 'ws://127.0.0.1:4000', auth: { session: true, requireUser: { role: ['admin', 'staff'] } } } },
 *   // A bearer JWT checked against the issuer's keys.
 *   '/api/stream/**': { wsProxy: { target: 'ws://127.0.0.1:4001/**', auth: { jwt: { jwks: 'https://id.example.com/.well-known/jwks.json', audience: 'stream-api' } } } },
 *   // The app's own auth library decides in the `ws-proxy:auth` hook.
 *   '/chat/**': { wsProxy: { target: 'ws://127.0.0.1:4002/**', auth: { hook: true } } },
 * }
 */
export interface AuthRuleInput {
  /**
   * Require a sealed h3 session cookie whose `data.user` is present and non-empty; otherwise the
   * upgrade is answered 401 and the upstream is never dialled. `false` (alone) turns auth off.
   */
  session?: boolean
  /**
   * Require a valid bearer JWT; its verified claims are the user. `true` is short for `{}`
   * (an `Authorization: Bearer` token signed with the shared secret).
   */
  jwt?: JwtRuleInput | boolean
  /**
   * Let the `ws-proxy:auth` hook alone decide (the app's own auth library): it reads the upgrade
   * request and sets `ctx.user`; no user after the hook means 401.
   */
  hook?: boolean
  /**
   * Origins allowed besides the request's own host. Browsers send cookies on cross-site
   * WebSocket upgrades, so on `session` and `hook` routes every other `Origin` is answered 403.
   * On `jwt` routes the origin is only checked when this is set (a token is never sent by the
   * browser on its own, so another site cannot borrow it). Exact origins only: scheme, host and
   * port, no path, no wildcards.
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
   * Values the user (session `data.user`, the JWT's claims, or the hook's `ctx.user`) must hold,
   * by (dotted) property path. A list means "any of"; when the user's value is an array, it must
   * contain one of the required values. Compared with `===`. A user who does not match gets 401.
   * @example { role: ['admin', 'staff'], 'org.id': 42, verified: true }
   */
  requireUser?: Record<string, RequiredUserValue | RequiredUserValue[]>
  /**
   * Header carrying `JSON.stringify(user)` (non-ASCII escaped as `\uXXXX`) on the upstream
   * handshake; any copy sent by the client is removed. `false` sends no identity.
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

/** {@link JwtRuleInput} after build-time validation: defaults applied. */
export interface NormalizedJwtRule {
  /** JWKS URL; unset: the shared secret from runtime config. */
  jwks?: string
  /** Accepted issuers (non-empty), or unset. */
  issuer?: string[]
  /** Accepted audiences (non-empty), or unset. */
  audience?: string[]
  /** Transports, in the order given. */
  from: JwtTransport[]
  /** Allowed algorithms (never `none`). */
  algorithms: string[]
  /** Seconds. */
  clockTolerance: number
}

/** The authentication method of a rule. */
export type AuthMethod = 'session' | 'jwt' | 'hook'

/** {@link AuthRuleInput} after build-time validation: every field set, origins normalised. */
export interface NormalizedAuthRule {
  /** `true` for the session method. `false` with no `jwt`/`hook`: the rule has no auth. */
  session: boolean
  /** Set for the jwt method. */
  jwt?: NormalizedJwtRule
  /** `true` for the hook method (absent otherwise). */
  hook?: boolean
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

/** The method a normalised rule turns on, or `undefined` when it has no auth. */
export function authMethod(rule: Pick<NormalizedAuthRule, 'session' | 'jwt' | 'hook'> | undefined): AuthMethod | undefined {
  if (!rule) return undefined
  if (rule.session === true) return 'session'
  if (rule.jwt) return 'jwt'
  if (rule.hook === true) return 'hook'
  return undefined
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

/** The JWT settings read from runtime config (never from route rules). */
export interface AuthJwtConfig {
  /**
   * Shared secret of HMAC-signed tokens (HS256/384/512), as UTF-8 bytes; at least 32
   * characters. Only used by `jwt` rules without `jwks`.
   */
  secret?: string
}

/**
 * How the JWKS of `jwt` rules is fetched and cached: jose's `createRemoteJWKSet` options. A
 * library setting (tests, unusual issuers), not a rule option.
 */
export interface AuthJwksOptions {
  /**
   * Milliseconds to wait for the JWKS response before answering 503.
   * @default 5000
   */
  timeout?: number
  /**
   * Milliseconds after a fetch during which a token naming an unknown `kid` is refused without
   * fetching again: random `kid`s cannot make the server hammer the issuer.
   * @default 30000
   */
  cooldown?: number
  /**
   * Milliseconds a fetched JWKS is used before it is fetched again. If that fetch fails, the
   * keys already known keep verifying tokens until the issuer answers again.
   * @default 600000
   */
  cacheMaxAge?: number
}

/** Runtime configuration of {@link createRouteAuth}. */
export interface AuthRuntimeConfig {
  /** Session settings (`session` rules). */
  session?: AuthSessionConfig
  /**
   * Env variable(s) to name in error messages about the password.
   * @default 'NITRO_WS_PROXY_SESSION_PASSWORD'
   */
  passwordEnv?: string | string[]
  /** JWT settings (`jwt` rules without `jwks`). */
  jwt?: AuthJwtConfig
  /**
   * Env variable to name in error messages about the JWT secret.
   * @default 'NITRO_WS_PROXY_JWT_SECRET'
   */
  secretEnv?: string
  /** JWKS fetching and caching (`jwt` rules with `jwks`). */
  jwks?: AuthJwksOptions
  /** Default of the rule's `trustProxy`. @default false */
  trustProxy?: boolean
  /**
   * Invokes app hooks, e.g. `(name, ctx) => nitroApp.hooks.callHook(name, ctx)`. Called with
   * {@link AUTH_HOOK} once the built-in checks passed (on `hook` rules: after the origin check).
   * Keeps this library free of Nitro.
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
 * What the `ws-proxy:auth` runtime hook receives on every route with `auth`, before anything is
 * dialled. On `session` and `jwt` routes it runs after the built-in checks passed (origin,
 * session or token, user, `requireUser`); on `hook` routes after the origin check, and the hook
 * alone decides by setting `ctx.user`. Mutate it to decide.
 *
 * @example
 * // server/plugins/ws-auth.ts
 * export default defineNitroPlugin((nitroApp) => {
 *   nitroApp.hooks.hook('ws-proxy:auth', async (ctx) => {
 *     if (ctx.method === 'hook') {
 *       // The app's own auth library, e.g. Better Auth:
 *       const found = await auth.api.getSession({ headers: ctx.request.headers })
 *       if (found) ctx.user = { id: found.user.id, name: found.user.name }
 *       return
 *     }
 *     if (ctx.route === '/live/**' && !(await canStream(ctx.user))) ctx.deny = { status: 403 }
 *     ctx.headers['x-tenant'] = String((ctx.user as any).tenant)
 *   })
 * })
 */
export interface WsProxyAuthContext {
  /** The route rule pattern, e.g. `'/live/**'`. */
  readonly route: string
  /** The rule's method: `'session'`, `'jwt'` or `'hook'`. */
  readonly method: AuthMethod
  /** The upgrade request (read its headers and cookies; its body is empty). */
  readonly request: Request
  /**
   * The request URL (path and query the client asked for). On `jwt` routes the token's query
   * parameters are already removed.
   */
  readonly url: URL
  /** The unsealed session on `session` routes (read-only: changes are not sealed back); else `undefined`. */
  readonly session: AuthSession | undefined
  /**
   * The user. `session`: `session.data.user`; `jwt`: the verified claims (`sub`, `exp`, ...);
   * both present and non-empty, and a new value set here is ignored (edit `headers` to change
   * what the upstream receives). `hook`: starts `undefined`; set it to let the connection in
   * (then `requireUser` applies to it and it goes upstream in the identity header).
   */
  user: unknown
  /**
   * Headers added to the upstream handshake. Pre-filled with the identity header on `session`
   * and `jwt` routes (on `hook` routes it is added after the hook from `ctx.user`, unless the
   * hook set that header itself), and `cookie` with `forwardCookies`; add, change or delete
   * entries. Client copies of every name here are removed. Names must be HTTP tokens; the same
   * names as in a rule's `headers` are refused (`host`, `connection`, `upgrade`,
   * `sec-websocket-*`, `content-length`, `transfer-encoding`, `te`, `trailer`, `keep-alive`,
   * `proxy-*`): the upgrade is then answered 500.
   */
  headers: Record<string, string>
  /**
   * Set to refuse the connection before any dial: `true` answers 403, `{ status, message }`
   * answers that 4xx status. Leaving it `false` allows.
   * @default false
   */
  deny: boolean | { status?: number, message?: string }
  /**
   * When (ms since epoch) the connection is closed with 1008. Starts at the session's expiry or
   * the token's `exp` (+ clock tolerance); a hook may only make it earlier (on `hook` routes it
   * starts unset: set it to your session's end).
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
  /** The close reason at `expiresAt`: `'Session expired'` or `'Token expired'`. */
  expiryReason?: string
  /** The user (session `data.user`, JWT claims, or the hook's `ctx.user`). */
  user?: unknown
}

/** The per-route authenticator returned by {@link createRouteAuth}. */
export interface RouteAuth {
  /** The route rule pattern. */
  readonly route: string
  /**
   * Never throws or rejects. Resolves to a `Response` (400 for a token sent twice, 401/403, 500
   * on misconfiguration or a failing hook, 503 on a hook timeout or an unreachable JWKS) to
   * reject, else what to add to the upstream handshake.
   */
  check: (request: Request) => Promise<Response | RouteAuthAccept>
  /**
   * Query parameters that carry tokens on this route (`jwt.from` `'query:<name>'`): the handler
   * removes them from the query before the upstream URL is mapped.
   */
  readonly queryParams?: readonly string[]
  /**
   * Drops the token entries from the subprotocol offer (`jwt` routes), for the core's
   * `protocolOffer`: they are neither forwarded upstream nor answered.
   */
  readonly protocolOffer?: (offer: string[]) => string[]
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

/** Env variable holding the JWT secret in a Nitro app (`runtimeConfig.wsProxy.jwt.secret`). */
export const NITRO_JWT_SECRET_ENV = 'NITRO_WS_PROXY_JWT_SECRET'

/** Env variable holding the JWT secret in a Nuxt app. */
export const NUXT_JWT_SECRET_ENV = 'NUXT_WS_PROXY_JWT_SECRET'

/**
 * Minimum JWT secret length, in UTF-8 bytes: 256 bits, the HS256 hash size (RFC 7518 §3.2 asks
 * for a key at least as long as the hash).
 */
export const MIN_JWT_SECRET_LENGTH = 32

/** Subprotocol prefix of a token entry (`base64url.bearer.<token>`). */
export const JWT_PROTOCOL_PREFIX = 'base64url.bearer.'

/** Default clock tolerance of `exp`/`nbf`, in seconds. */
export const DEFAULT_CLOCK_TOLERANCE = 5

/** Largest `clockTolerance` a rule may set, in seconds. */
export const MAX_CLOCK_TOLERANCE = 300

/** HMAC algorithms (shared secret). */
export const HMAC_ALGORITHMS: readonly string[] = ['HS256', 'HS384', 'HS512']

/** Asymmetric algorithms accepted by default with `jwks` (those jose verifies on every runtime we support). */
export const ASYMMETRIC_ALGORITHMS: readonly string[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']

/** Further asymmetric algorithms a rule may list explicitly (need runtime support: ML-DSA on Node 24+). */
export const EXTRA_ASYMMETRIC_ALGORITHMS: readonly string[] = ['ML-DSA-44', 'ML-DSA-65', 'ML-DSA-87']
