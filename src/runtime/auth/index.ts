import type { SessionConfig } from 'h3'
import type {
  AuthRuntimeConfig,
  NormalizedAuthRule,
  RouteAuth,
  RouteAuthAccept,
  WsProxyAuthContext,
} from './types'
import { getSessionPasswordProblem } from './config'
import { checkOrigin } from './origin'
import { hasUser, openSession, readCookie, readHeader } from './session'
import { AUTH_HOOK, DEFAULT_USER_HEADER, NITRO_PASSWORD_ENV } from './types'
import { handshakeHeaderProblem, headerPath } from '../headers'
import { encodeUserHeader, matchesRequirements } from './user'
import { rejectUpgrade } from '../../core/reject'

export type * from './types'
export { AUTH_HOOK, DEFAULT_USER_HEADER, MIN_PASSWORD_LENGTH, NITRO_PASSWORD_ENV, NUXT_PASSWORD_ENV, NUXT_SESSION_PASSWORD_ENV } from './types'
export { assertSessionPassword, getSessionPasswordProblem, resolveSessionConfig } from './config'
export type { ResolvedSessionConfig } from './config'
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

function reject(status: number, message?: string): Response {
  return rejectUpgrade(status, STATUS_TEXT[status] ?? 'Error', message || undefined)
}

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

/**
 * Create the session authenticator of one route. Does not throw: with an unusable password the
 * route answers 500 and the problem is logged once. In a Nitro server that never happens: the
 * module's start check (`./startup`, `assertSessionPassword`) stops the server first.
 *
 * @param route The route rule pattern, e.g. `'/live/**'` (used in messages and hook context).
 * @param auth The rule's normalised `auth` field (`validateAuthRule` from the Nitro module).
 * @param config Session options from runtime config, and the hook caller.
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
  const passwordProblem = auth.session !== true ? undefined : getSessionPasswordProblem(config.session, config.passwordEnv ?? NITRO_PASSWORD_ENV, [route])
  let passwordProblemLogged = false
  const sessionConfig: SessionConfig = {
    password: String(config.session?.password ?? ''),
    name: config.session?.name || 'h3',
    maxAge: Number(config.session?.maxAge) > 0 ? Number(config.session!.maxAge) : undefined,
    ...(config.session?.seal ? { seal: config.session.seal as SessionConfig['seal'] } : {}),
  }
  const cookieName = sessionConfig.name!
  const allowedOrigins = auth.allowedOrigins ?? []
  const trustProxy = auth.trustProxy ?? config.trustProxy ?? false
  const requirements = auth.requireUser ?? {}
  const userHeader = auth.userHeader === undefined ? DEFAULT_USER_HEADER : auth.userHeader
  const forwardCookies = auth.forwardCookies === true
  const hookTimeout = config.hookTimeout === undefined || config.hookTimeout === null ? 10_000 : Number(config.hookTimeout) || 0

  async function check(request: Request): Promise<Response | RouteAuthAccept> {
    if (auth.session !== true) {
      // `auth: false` (or `{ session: false }`): the rule asked for no authentication.
      return { headers: {}, removeHeaders: [] }
    }
    try {
      if (passwordProblem) {
        if (!passwordProblemLogged) {
          passwordProblemLogged = true
          logError(passwordProblem)
        }
        return reject(500)
      }
      const getHeader = (name: string) => readHeader(request, name)

      // 1. Cross-site WebSocket hijacking: before touching the cookie.
      if (!checkOrigin(getHeader, request.url, { allowedOrigins, trustProxy })) {
        return reject(403)
      }

      // 2. The session and its user. Every failure is the same 401.
      const cookieHeader = getHeader('cookie')
      const opened = await openSession(readCookie(cookieHeader, cookieName), sessionConfig)
      if (!opened) {
        return reject(401)
      }
      const { session } = opened
      const user = session.data.user
      if (!hasUser(user) || !matchesRequirements(user, requirements)) {
        return reject(401)
      }

      // 3. What the upstream receives.
      let headers: Record<string, string> = {}
      if (userHeader) {
        headers[userHeader] = encodeUserHeader(user)
      }
      if (forwardCookies && cookieHeader) {
        headers.cookie = cookieHeader
      }
      let expiresAt = opened.expiresAt

      // 4. App code, for what a rule cannot express.
      if (config.callHook) {
        let url: URL
        try {
          url = new URL(request.url, `http://${getHeader('host') || 'localhost'}`)
        }
        catch {
          url = new URL('http://localhost/')
        }
        const ctx: WsProxyAuthContext = {
          route,
          request,
          url,
          session,
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
        if (typeof ctx.expiresAt === 'number' && Number.isFinite(ctx.expiresAt)
          && (expiresAt === undefined || ctx.expiresAt < expiresAt)) {
          expiresAt = ctx.expiresAt
        }
        if (expiresAt !== undefined && expiresAt <= Date.now()) {
          return reject(401)
        }
      }

      const removeHeaders = new Set(Object.keys(headers))
      if (userHeader) {
        removeHeaders.add(userHeader)
      }
      if (!forwardCookies) {
        removeHeaders.add('cookie')
      }
      return { headers, removeHeaders: [...removeHeaders], expiresAt, user }
    }
    catch (error) {
      // A bug, not a client error: fail closed, never hang the client.
      logError(`[nitro-ws-proxy] Authentication failed unexpectedly for routeRules['${route}']; answered 500.`, error)
      return reject(500)
    }
  }

  return { route, check }
}
