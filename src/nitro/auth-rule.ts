import type { JwtTransport, NormalizedAuthRule, NormalizedJwtRule, RequiredUserValue } from '../runtime/auth/types'
import { normalizeOrigin } from '../runtime/auth/origin'
import {
  ASYMMETRIC_ALGORITHMS,
  DEFAULT_CLOCK_TOLERANCE,
  DEFAULT_USER_HEADER,
  EXTRA_ASYMMETRIC_ALGORITHMS,
  HMAC_ALGORITHMS,
  MAX_CLOCK_TOLERANCE,
  NITRO_JWT_SECRET_ENV,
  NITRO_PASSWORD_ENV,
  NUXT_JWT_SECRET_ENV,
  NUXT_PASSWORD_ENV,
  NUXT_SESSION_PASSWORD_ENV,
} from '../runtime/auth/types'
import { HEADER_NAME_RE, handshakeHeaderProblem } from '../runtime/headers'

export type { AuthRuleInput, JwtRuleInput, NormalizedAuthRule, NormalizedJwtRule } from '../runtime/auth/types'

const KNOWN_KEYS = ['session', 'jwt', 'hook', 'allowedOrigins', 'trustProxy', 'requireUser', 'userHeader', 'forwardCookies'] as const
const JWT_KEYS = ['jwks', 'issuer', 'audience', 'from', 'algorithms', 'clockTolerance'] as const
const SECRET_KEY_RE = /password|secret/i
/** Inside `jwt`: a key (or a private one) has no place in a rule either. */
const JWT_SECRET_KEY_RE = /password|secret|private|^key$|^k$/i
/** A query parameter name a token may travel in (unreserved URL characters). */
const QUERY_NAME_RE = /^[\w.~-]{1,64}$/

/** Options of {@link validateAuthRule}. */
export interface ValidateAuthRuleOptions {
  /** Variable(s) to point to when a secret is found in the rule. Defaults to the Nitro and Nuxt names. */
  passwordEnv?: string | string[]
}

function describe(value: unknown): string {
  if (typeof value === 'string') {
    return `'${value.length > 60 ? `${value.slice(0, 57)}...` : value}'`
  }
  if (Array.isArray(value)) {
    return 'an array'
  }
  return value === null ? 'null' : typeof value === 'object' ? 'an object' : String(value)
}

/** Where a secret-looking key sits in the rule (top level, inside `session` or `jwt`), without its value. */
function findSecretKey(input: Record<string, unknown>): string | undefined {
  const top = Object.keys(input).find(key => SECRET_KEY_RE.test(key))
  if (top) {
    return `.${top}`
  }
  for (const [field, re] of [['session', SECRET_KEY_RE], ['jwt', JWT_SECRET_KEY_RE]] as const) {
    const nestedObject = input[field]
    if (nestedObject && typeof nestedObject === 'object' && !Array.isArray(nestedObject)) {
      const nested = Object.keys(nestedObject).find(key => re.test(key))
      if (nested) {
        return `.${field}.${nested}`
      }
    }
  }
  return undefined
}

/** Accept a string or a non-empty list of non-empty strings; normalise to a list. */
function stringList(value: unknown, field: string, example: string, fail: (message: string) => never): string[] {
  const list = typeof value === 'string' ? [value] : value
  if (!Array.isArray(list) || list.length === 0) {
    fail(`.${field} must be a string or a non-empty list of strings, like ${example} (got ${describe(value)}).`)
  }
  ;(list as unknown[]).forEach((item, index) => {
    if (typeof item !== 'string' || item.trim() === '') {
      fail(`.${field}${typeof value === 'string' ? '' : `[${index}]`} must be a non-empty string, like ${example} (got ${describe(item)}).`)
    }
  })
  return [...new Set(list as string[])]
}

/** Validate and normalise `auth.jwt` (`true` is `{}`). */
function validateJwtRule(value: unknown, fail: (message: string) => never): NormalizedJwtRule {
  if (value === true) {
    value = {}
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    fail(`.jwt must be an object like { jwks: 'https://id.example.com/.well-known/jwks.json' } or true (got ${describe(value)}).`)
  }
  const input = value as Record<string, unknown>
  for (const key of Object.keys(input)) {
    if (!(JWT_KEYS as readonly string[]).includes(key)) {
      fail(`.jwt.${key} is not an option. Known options: ${JWT_KEYS.join(', ')}.`)
    }
  }

  let jwks: string | undefined
  if (input.jwks !== undefined) {
    let url: URL | undefined
    try {
      url = typeof input.jwks === 'string' ? new URL(input.jwks) : undefined
    }
    catch {}
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || !url.hostname) {
      fail(`.jwt.jwks must be the http(s) URL of a JSON Web Key Set, like 'https://id.example.com/.well-known/jwks.json' (got ${describe(input.jwks)}).`)
    }
    if (url!.username || url!.password) {
      fail(`.jwt.jwks must not contain credentials: route rules are written in plain text into the build output.`)
    }
    if (url!.hash) {
      fail(`.jwt.jwks must not contain a #fragment (got ${describe(input.jwks)}).`)
    }
    jwks = url!.href
  }

  const normalized: NormalizedJwtRule = {
    ...(jwks ? { jwks } : {}),
    from: ['header'],
    algorithms: [...(jwks ? ASYMMETRIC_ALGORITHMS : HMAC_ALGORITHMS)],
    clockTolerance: DEFAULT_CLOCK_TOLERANCE,
  }
  if (input.issuer !== undefined) {
    normalized.issuer = stringList(input.issuer, 'jwt.issuer', `'https://id.example.com/'`, fail)
  }
  if (input.audience !== undefined) {
    normalized.audience = stringList(input.audience, 'jwt.audience', `'stream-api'`, fail)
  }

  if (input.from !== undefined) {
    if (!Array.isArray(input.from) || input.from.length === 0) {
      fail(`.jwt.from must be a non-empty list of transports, like ['header', 'query:access_token', 'protocol'] (got ${describe(input.from)}).`)
    }
    const from: JwtTransport[] = []
    ;(input.from as unknown[]).forEach((transport, index) => {
      const ok = transport === 'header' || transport === 'protocol'
        || (typeof transport === 'string' && transport.startsWith('query:') && QUERY_NAME_RE.test(transport.slice('query:'.length)))
      if (!ok) {
        fail(`.jwt.from[${index}] must be 'header' (Authorization: Bearer), 'protocol' (a base64url.bearer.<token> subprotocol entry) or 'query:<name>' with a parameter name of letters, digits and _.~- (got ${describe(transport)}).`)
      }
      if (from.includes(transport as JwtTransport)) {
        fail(`.jwt.from[${index}] repeats ${describe(transport)}.`)
      }
      from.push(transport as JwtTransport)
    })
    normalized.from = from
  }

  if (input.algorithms !== undefined) {
    if (!Array.isArray(input.algorithms) || input.algorithms.length === 0) {
      fail(`.jwt.algorithms must be a non-empty list, like ['${jwks ? 'RS256' : 'HS256'}'] (got ${describe(input.algorithms)}).`)
    }
    const algorithms: string[] = []
    ;(input.algorithms as unknown[]).forEach((alg, index) => {
      const at = `.jwt.algorithms[${index}]`
      if (typeof alg === 'string' && alg.toLowerCase() === 'none') {
        fail(`${at} must not be 'none': an unsigned token would let anyone in.`)
      }
      const known = [...ASYMMETRIC_ALGORITHMS, ...EXTRA_ASYMMETRIC_ALGORITHMS, ...HMAC_ALGORITHMS]
      if (typeof alg !== 'string' || !known.includes(alg)) {
        fail(`${at} must be one of ${known.join(', ')} (got ${describe(alg)}).`)
      }
      const hmac = HMAC_ALGORITHMS.includes(alg as string)
      if (jwks && hmac) {
        fail(`${at} is ${describe(alg)}, an HMAC algorithm: it is verified with a shared secret, not with the jwks keys. List asymmetric algorithms (like 'RS256'), or remove jwks and set ${NITRO_JWT_SECRET_ENV}.`)
      }
      if (!jwks && !hmac) {
        fail(`${at} is ${describe(alg)}, which needs the issuer's public keys: set jwt.jwks, or use HS256/HS384/HS512 with ${NITRO_JWT_SECRET_ENV}.`)
      }
      if (algorithms.includes(alg as string)) {
        fail(`${at} repeats ${describe(alg)}.`)
      }
      algorithms.push(alg as string)
    })
    normalized.algorithms = algorithms
  }

  if (input.clockTolerance !== undefined) {
    const tolerance = input.clockTolerance
    if (typeof tolerance !== 'number' || !Number.isFinite(tolerance) || tolerance < 0 || tolerance > MAX_CLOCK_TOLERANCE) {
      fail(`.jwt.clockTolerance must be a number of seconds from 0 to ${MAX_CLOCK_TOLERANCE} (got ${describe(tolerance)}).`)
    }
    normalized.clockTolerance = tolerance as number
  }
  return normalized
}

/**
 * Validate and normalise the `auth` field of a `wsProxy` route rule at build time. Throws a
 * `TypeError` whose message names the field and the remedy; refuses any password or secret
 * (route rules ship in plain text in the build output). The rule must name exactly one method:
 * `session: true`, `jwt: {...}` or `hook: true`.
 *
 * `undefined`/`false`/`{ session: false }` give `{ session: false, ... }` (no authentication);
 * `true` is short for `{ session: true }`.
 *
 * @example validateAuthRule('/live/**', { session: true, allowedOrigins: ['https://app.example.com'] })
 * @example validateAuthRule('/api/**', { jwt: { jwks: 'https://id.example.com/jwks.json', audience: 'api' } })
 */
export function validateAuthRule(route: string, value: unknown, options: ValidateAuthRuleOptions = {}): NormalizedAuthRule {
  const at = `[nitro-ws-proxy] routeRules['${route}'].wsProxy.auth`
  const fail = (message: string): never => {
    throw new TypeError(`${at}${message}`)
  }
  const normalized: NormalizedAuthRule = {
    session: false,
    allowedOrigins: [],
    requireUser: {},
    userHeader: DEFAULT_USER_HEADER,
    forwardCookies: false,
  }
  if (value === undefined || value === null || value === false) {
    return normalized
  }
  if (value === true) {
    return { ...normalized, session: true }
  }
  if (typeof value !== 'object' || Array.isArray(value)) {
    fail(` must be an object like { session: true }, { jwt: { ... } } or { hook: true }, true or false (got ${describe(value)}).`)
  }

  const secretPath = findSecretKey(value as Record<string, unknown>)
  if (secretPath) {
    const jwt = (value as Record<string, unknown>).jwt
    const remedy = jwt !== undefined && jwt !== false
      ? `Set the JWT secret with the ${NITRO_JWT_SECRET_ENV} (Nuxt: ${NUXT_JWT_SECRET_ENV}) environment variable (runtime config), or give jwt.jwks the URL of the issuer's public keys; never a key in routeRules.`
      : `Set the session password with the ${options.passwordEnv
        ? (typeof options.passwordEnv === 'string' ? options.passwordEnv : options.passwordEnv.join(' / '))
        : `${NITRO_PASSWORD_ENV} (Nuxt: ${NUXT_PASSWORD_ENV} or ${NUXT_SESSION_PASSWORD_ENV})`} environment variable (runtime config), never in routeRules.`
    fail(`${secretPath} must not be set: route rules are written in plain text into the build output. ${remedy}`)
  }

  const input = value as Record<string, unknown>
  for (const key of Object.keys(input)) {
    if (!(KNOWN_KEYS as readonly string[]).includes(key)) {
      fail(`.${key} is not an option. Known options: ${KNOWN_KEYS.join(', ')}.`)
    }
  }

  if (input.session !== undefined && typeof input.session !== 'boolean') {
    fail(`.session must be true (require a session with a user) or false (got ${describe(input.session)}).`)
  }
  if (input.hook !== undefined && typeof input.hook !== 'boolean') {
    fail(`.hook must be true (the ws-proxy:auth hook sets the user) or false (got ${describe(input.hook)}).`)
  }
  const methods = [
    input.session === true && 'session',
    input.jwt !== undefined && input.jwt !== false && 'jwt',
    input.hook === true && 'hook',
  ].filter((m): m is string => Boolean(m))
  if (methods.length > 1) {
    fail(` must name exactly one method of session, jwt and hook (got ${methods.join(' and ')}): use one rule per method.`)
  }
  if (methods.length === 0 && input.session !== false && input.jwt !== false && input.hook !== false) {
    fail(` must name one method: session: true (a sealed session cookie), jwt: { ... } (a bearer token) or hook: true (the ws-proxy:auth hook decides); or be false for no auth.`)
  }
  normalized.session = input.session === true
  if (methods[0] === 'jwt') {
    normalized.jwt = validateJwtRule(input.jwt, fail)
  }
  if (methods[0] === 'hook') {
    normalized.hook = true
  }

  if (input.allowedOrigins !== undefined) {
    if (!Array.isArray(input.allowedOrigins)) {
      fail(`.allowedOrigins must be an array of origins like ['https://app.example.com'] (got ${describe(input.allowedOrigins)}).`)
    }
    const origins = new Set<string>()
    ;(input.allowedOrigins as unknown[]).forEach((origin, index) => {
      if (origin === '*') {
        fail(`.allowedOrigins[${index}] must not be '*': that would let any site use the visitor's session cookie. List each origin.`)
      }
      if (typeof origin === 'string' && origin.includes('*')) {
        fail(`.allowedOrigins[${index}] must not contain a wildcard (got ${describe(origin)}): list each origin, like 'https://app.example.com'.`)
      }
      const normalizedOrigin = typeof origin === 'string' ? normalizeOrigin(origin) : undefined
      if (!normalizedOrigin) {
        fail(`.allowedOrigins[${index}] must be an origin like 'https://app.example.com' (scheme, host and optional port; no path or wildcard) (got ${describe(origin)}).`)
      }
      origins.add(normalizedOrigin!)
    })
    normalized.allowedOrigins = [...origins]
  }

  if (input.trustProxy !== undefined) {
    if (typeof input.trustProxy !== 'boolean') {
      fail(`.trustProxy must be a boolean (got ${describe(input.trustProxy)}).`)
    }
    normalized.trustProxy = input.trustProxy as boolean
  }

  if (input.requireUser !== undefined) {
    const requireUser = input.requireUser
    if (!requireUser || typeof requireUser !== 'object' || Array.isArray(requireUser)) {
      fail(`.requireUser must be an object of required values, like { role: ['admin', 'staff'] } (got ${describe(requireUser)}).`)
    }
    for (const [path, expected] of Object.entries(requireUser as Record<string, unknown>)) {
      if (!path || path.split('.').some(part => !part || part === '__proto__' || part === 'constructor' || part === 'prototype')) {
        fail(`.requireUser has an invalid property path ${describe(path)}: use names separated by dots, like 'org.id'.`)
      }
      const list = Array.isArray(expected) ? expected : [expected]
      if (list.length === 0) {
        fail(`.requireUser['${path}'] must not be an empty list (no user could match).`)
      }
      for (const item of list) {
        if (!(typeof item === 'string' || typeof item === 'boolean' || (typeof item === 'number' && Number.isFinite(item)))) {
          fail(`.requireUser['${path}'] must be a string, number or boolean, or a list of them (got ${describe(item)}).`)
        }
      }
      normalized.requireUser[path] = list as RequiredUserValue[]
    }
  }

  if (input.userHeader !== undefined) {
    const header = input.userHeader
    if (header !== false) {
      if (typeof header !== 'string' || !HEADER_NAME_RE.test(header)) {
        fail(`.userHeader must be a header name like '${DEFAULT_USER_HEADER}', or false (got ${describe(header)}).`)
      }
      const problem = (header as string).toLowerCase() === 'cookie'
        ? 'the upstream gets the client\'s cookies with forwardCookies'
        : handshakeHeaderProblem(header as string)
      if (problem) {
        fail(`.userHeader must not be ${describe(header)}: ${problem}. Use a custom name like '${DEFAULT_USER_HEADER}'.`)
      }
    }
    normalized.userHeader = header === false ? false : (header as string).toLowerCase()
  }

  if (input.forwardCookies !== undefined) {
    if (typeof input.forwardCookies !== 'boolean') {
      fail(`.forwardCookies must be a boolean (got ${describe(input.forwardCookies)}).`)
    }
    normalized.forwardCookies = input.forwardCookies as boolean
  }

  return normalized
}
