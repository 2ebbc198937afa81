import type { SessionConfig } from 'h3'
import type {
  AuthRuntimeConfig,
  AuthSession,
  NormalizedAuthRule,
  RouteAuth,
  RouteAuthAccept,
  WsProxyAuthContext,
} from './types'
import { getJwtSecretProblem, getSessionPasswordProblem } from './config'
import { createJwtVerifier, dropTokenProtocols, findTokens, queryTransports } from './jwt'
import { checkOrigin } from './origin'
import { hasUser, openSession, readCookie, readHeader } from './session'
import { AUTH_HOOK, authMethod, DEFAULT_USER_HEADER, NITRO_JWT_SECRET_ENV, NITRO_PASSWORD_ENV } from './types'
import { handshakeHeaderProblem, headerPath } from '../headers'
import { encodeUserHeader, matchesRequirements } from './user'
import { rejectUpgrade } from '../../core/reject'

export type * from './types'
export {
  ASYMMETRIC_ALGORITHMS,
  AUTH_HOOK,
  authMethod,
  DEFAULT_CLOCK_TOLERANCE,
  DEFAULT_USER_HEADER,
  HMAC_ALGORITHMS,
  JWT_PROTOCOL_PREFIX,
  MIN_JWT_SECRET_LENGTH,
  MIN_PASSWORD_LENGTH,
  NITRO_JWT_SECRET_ENV,
  NITRO_PASSWORD_ENV,
  NUXT_JWT_SECRET_ENV,
  NUXT_PASSWORD_ENV,
  NUXT_SESSION_PASSWORD_ENV,
} from './types'
export { assertJwtSecret, assertSessionPassword, getJwtSecretProblem, getSessionPasswordProblem, resolveJwtConfig, resolveSessionConfig } from './config'
export type { ResolvedJwtConfig, ResolvedSessionConfig } from './config'
export { createJwtVerifier, dropTokenProtocols, findTokens } from './jwt'
export type { JwtVerdict, JwtVerifier } from './jwt'
export { checkOrigin, normalizeOrigin } from './origin'
export { encodeUserHeader } from './user'

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
}

function reject(status: number, message?: string, headers?: Record<string, string>): Response {
  return rejectUpgrade(status, STATUS_TEXT[status] ?? 'Error', message || undefined, headers)
}

/** RFC 6750 §3: a 401 for a missing or bad bearer token names the scheme (one token: crossws 0.3 URL-encodes header values). */
const BEARER_CHALLENGE = { 'www-authenticate': 'Bearer' }

class HookTimeoutError extends Error {}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  if (!ms || ms <= 0) {
    return promise
  }
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, rejectTimeout) => {
    timer = setTimeout(() => rejectTimeout(new HookTimeoutError()), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

function denyStatus(deny: WsProxyAuthContext['deny']): { status: number, message?: string } | undefined {
  if (!deny) {
    return undefined
  }
  if (deny === true || typeof deny !== 'object') {
    return { status: 403 }
  }
  const status = Number.isInteger(deny.status) && deny.status! >= 400 && deny.status! <= 499 ? deny.status! : 403
  // A short, single-line message; anything else falls back to the status text.
  const message = typeof deny.message === 'string' && /^[\x20-\x7E]{1,200}$/.test(deny.message) ? deny.message : undefined
  return { status, message }
}

/** Validate and normalise hook-edited headers (the one handshake header policy); throws a message naming the bad entry. */
function sanitizeHeaders(headers: unknown): Record<string, string> {
  if (!headers || typeof headers !== 'object') {
    throw new TypeError('ctx.headers must be an object of strings')
  }
  const result: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || value === null) {
      continue
    }
    const problem = handshakeHeaderProblem(name)
    if (problem) {
      throw new TypeError(`${headerPath('ctx.headers', name.slice(0, 64))} is not allowed: ${problem}`)
    }
    const text = String(value)
    if (!/^[\t\x20-\x7E\x80-\xFF]*$/.test(text)) {
      throw new TypeError(`${headerPath('ctx.headers', name)} holds characters not allowed in a header value`)
    }
    result[name.toLowerCase()] = text
  }
  return result
}

/** Who the upgrade is, as the rule's method found out (before the hook). */
interface Identity {
  user: unknown
  session?: AuthSession
  expiresAt?: number
  expiryReason: string
}

/**
 * Create the authenticator of one route: its `check` runs on every upgrade, before anything is
 * dialled, and follows the rule's method:
 *
 * 1. configuration: an unusable session password or JWT secret answers 500 (logged once);
 * 2. origin: cross-site upgrades are answered 403 on `session` and `hook` routes (cookies ride
 *    along with them), on `jwt` routes only when `allowedOrigins` is set;
 * 3. identity: the session cookie (`session`) or the bearer token (`jwt`) gives the user, checked
 *    against `requireUser`; failures answer 401 (400 for a token sent twice, 503 when the JWKS
 *    cannot be fetched);
 * 4. the `ws-proxy:auth` hook (every method): may deny, edit the upstream headers, end the
 *    connection earlier; on `hook` routes it sets the user, and no user means 401.
 *
 * Does not throw. With an unusable secret the route answers 500 and the problem is logged once;
 * in a Nitro server that never happens: the module's start checks (`./startup`) stop it first.
 *
 * @param route The route rule pattern, e.g. `'/live/**'` (used in messages and hook context).
 * @param auth The rule's normalised `auth` field (`validateAuthRule` from the Nitro module).
 * @param config Secrets and settings from runtime config, and the hook caller.
 */
export function createRouteAuth(route: string, auth: NormalizedAuthRule, config: AuthRuntimeConfig): RouteAuth {
  const logError = config.logError ?? ((message: string, error?: unknown) => {
    if (error === undefined) {
      console.error(message)
    }
    else {
      console.error(message, error)
    }
  })
  const method = authMethod(auth)
  const jwtRule = method === 'jwt' ? auth.jwt! : undefined
  // A route without its secret fails closed on every upgrade (the start checks stop a Nitro server first).
  const configProblem = method === 'session'
    ? getSessionPasswordProblem(config.session, config.passwordEnv ?? NITRO_PASSWORD_ENV, [route])
    : jwtRule && !jwtRule.jwks
      ? getJwtSecretProblem(config.jwt?.secret, config.secretEnv ?? NITRO_JWT_SECRET_ENV, [route])
      : undefined
  let configProblemLogged = false
  const sessionConfig: SessionConfig = {
    password: String(config.session?.password ?? ''),
    name: config.session?.name || 'h3',
    maxAge: Number(config.session?.maxAge) > 0 ? Number(config.session!.maxAge) : undefined,
    ...(config.session?.seal ? { seal: config.session.seal as SessionConfig['seal'] } : {}),
  }
  const cookieName = sessionConfig.name!
  const verifier = jwtRule
    ? createJwtVerifier(jwtRule, { route, secret: config.jwt?.secret, secretEnv: config.secretEnv, jwks: config.jwks, logError })
    : undefined
  const tokenParams = jwtRule ? queryTransports(jwtRule.from) : []
  const allowedOrigins = auth.allowedOrigins ?? []
  // Cookies (and whatever a hook reads) ride along with cross-site upgrades; a bearer token does not.
  const checksOrigin = method === 'session' || method === 'hook' || allowedOrigins.length > 0
  const trustProxy = auth.trustProxy ?? config.trustProxy ?? false
  const requirements = auth.requireUser ?? {}
  const userHeader = auth.userHeader === undefined ? DEFAULT_USER_HEADER : auth.userHeader
  const forwardCookies = auth.forwardCookies === true
  const hookTimeout = config.hookTimeout === undefined || config.hookTimeout === null ? 10_000 : Number(config.hookTimeout) || 0

  /** The session (`session`) or the token's claims (`jwt`); a `Response` refuses. */
  async function identify(request: Request, getHeader: (name: string) => string | undefined, url: URL): Promise<Response | Identity> {
    if (method === 'session') {
      const opened = await openSession(readCookie(getHeader('cookie'), cookieName), sessionConfig)
      if (!opened) {
        return reject(401)
      }
      return { user: opened.session.data.user, session: opened.session, expiresAt: opened.expiresAt, expiryReason: 'Session expired' }
    }
    if (method === 'jwt') {
      const tokens = findTokens(request, url, jwtRule!.from)
      // RFC 6750 §2: one token, one way. Which one would count is ambiguous: refuse.
      if (tokens.length > 1) {
        return reject(400)
      }
      if (tokens.length === 0) {
        return reject(401, undefined, BEARER_CHALLENGE)
      }
      const verdict = await verifier!.verify(tokens[0]!)
      if (!verdict.ok) {
        return verdict.status === 401 ? reject(401, undefined, BEARER_CHALLENGE) : reject(verdict.status)
      }
      return { user: verdict.claims, expiresAt: verdict.expiresAt, expiryReason: 'Token expired' }
    }
    return { user: undefined, expiryReason: 'Session expired' }
  }

  async function check(request: Request): Promise<Response | RouteAuthAccept> {
    if (!method) {
      // `auth: false` (or `{ session: false }`): the rule asked for no authentication.
      return { headers: {}, removeHeaders: [] }
    }
    try {
      if (configProblem) {
        if (!configProblemLogged) {
          configProblemLogged = true
          logError(configProblem)
        }
        return reject(500)
      }
      const getHeader = (name: string) => readHeader(request, name)

      // 1. Cross-site WebSocket hijacking: before touching the cookie.
      if (checksOrigin && !checkOrigin(getHeader, request.url, { allowedOrigins, trustProxy })) {
        return reject(403)
      }

      let url: URL
      try {
        url = new URL(request.url, `http://${getHeader('host') || 'localhost'}`)
      }
      catch {
        url = new URL('http://localhost/')
      }

      // 2. Who it is. Every failure of the session or the token is the same 401.
      const identity = await identify(request, getHeader, url)
      if (identity instanceof Response) {
        return identity
      }
      let user = identity.user
      if (method !== 'hook' && (!hasUser(user) || !matchesRequirements(user, requirements))) {
        return reject(401)
      }

      // 3. What the upstream receives.
      let headers: Record<string, string> = {}
      if (userHeader && method !== 'hook') {
        headers[userHeader] = encodeUserHeader(user)
      }
      const cookieHeader = forwardCookies ? getHeader('cookie') : undefined
      if (cookieHeader) {
        headers.cookie = cookieHeader
      }
      let expiresAt = identity.expiresAt

      // 4. App code, for what a rule cannot express (and the whole decision on `hook` routes).
      if (config.callHook) {
        // The hook sees the URL without the token (it may log it).
        for (const name of tokenParams) {
          url.searchParams.delete(name)
        }
        const ctx: WsProxyAuthContext = {
          route,
          method,
          request,
          url,
          session: identity.session,
          user,
          headers: { ...headers },
          deny: false,
          expiresAt,
        }
        try {
          await withTimeout(Promise.resolve().then(() => config.callHook!(AUTH_HOOK, ctx)), hookTimeout)
        }
        catch (error) {
          if (error instanceof HookTimeoutError) {
            logError(`[nitro-ws-proxy] The '${AUTH_HOOK}' hook did not settle within ${hookTimeout} ms for routeRules['${route}']; answered 503.`)
            return reject(503)
          }
          logError(`[nitro-ws-proxy] The '${AUTH_HOOK}' hook failed for routeRules['${route}']; answered 500.`, error)
          return reject(500)
        }
        const denied = denyStatus(ctx.deny)
        if (denied) {
          return reject(denied.status, denied.message)
        }
        try {
          headers = sanitizeHeaders(ctx.headers)
        }
        catch (error) {
          logError(`[nitro-ws-proxy] The '${AUTH_HOOK}' hook set invalid headers for routeRules['${route}']: ${(error as Error).message}; answered 500.`)
          return reject(500)
        }
        if (method === 'hook') {
          user = ctx.user
        }
        if (typeof ctx.expiresAt === 'number' && Number.isFinite(ctx.expiresAt)
          && (expiresAt === undefined || ctx.expiresAt < expiresAt)) {
          expiresAt = ctx.expiresAt
        }
        if (expiresAt !== undefined && expiresAt <= Date.now()) {
          return reject(401)
        }
      }

      if (method === 'hook') {
        // The hook alone decides: no user (no hook, or a hook that found none) is a 401.
        if (!hasUser(user) || !matchesRequirements(user, requirements)) {
          return reject(401)
        }
        if (userHeader && !(userHeader in headers)) {
          let encoded: string | undefined
          try {
            encoded = encodeUserHeader(user)
          }
          catch {}
          if (typeof encoded !== 'string') {
            logError(`[nitro-ws-proxy] The '${AUTH_HOOK}' hook set a ctx.user that JSON cannot encode for routeRules['${route}']; answered 500.`)
            return reject(500)
          }
          headers[userHeader] = encoded
        }
      }

      const removeHeaders = new Set(Object.keys(headers))
      if (userHeader) {
        removeHeaders.add(userHeader)
      }
      if (!forwardCookies) {
        removeHeaders.add('cookie')
      }
      if (method === 'jwt') {
        removeHeaders.add('authorization')
      }
      return { headers, removeHeaders: [...removeHeaders], expiresAt, expiryReason: identity.expiryReason, user }
    }
    catch (error) {
      // A bug, not a client error: fail closed, never hang the client.
      logError(`[nitro-ws-proxy] Authentication failed unexpectedly for routeRules['${route}']; answered 500.`, error)
      return reject(500)
    }
  }

  return {
    route,
    check,
    ...(tokenParams.length ? { queryParams: tokenParams } : {}),
    ...(jwtRule ? { protocolOffer: dropTokenProtocols } : {}),
  }
}
