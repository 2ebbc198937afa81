import type { NormalizedAuthRule, RequiredUserValue } from '../runtime/auth/types'
import { normalizeOrigin } from '../runtime/auth/origin'
import { DEFAULT_USER_HEADER, NITRO_PASSWORD_ENV, NUXT_PASSWORD_ENV, NUXT_SESSION_PASSWORD_ENV } from '../runtime/auth/types'
import { HEADER_NAME_RE, handshakeHeaderProblem } from '../runtime/headers'

export type { AuthRuleInput, NormalizedAuthRule } from '../runtime/auth/types'

const KNOWN_KEYS = ['session', 'allowedOrigins', 'trustProxy', 'requireUser', 'userHeader', 'forwardCookies'] as const
const SECRET_KEY_RE = /password|secret/i

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

/** Where a secret-looking key sits in the rule (top level or inside `session`), without its value. */
function findSecretKey(input: Record<string, unknown>): string | undefined {
  const top = Object.keys(input).find(key => SECRET_KEY_RE.test(key))
  if (top) {
    return `.${top}`
  }
  const session = input.session
  if (session && typeof session === 'object' && !Array.isArray(session)) {
    const nested = Object.keys(session).find(key => SECRET_KEY_RE.test(key))
    if (nested) {
      return `.session.${nested}`
    }
  }
  return undefined
}

/**
 * Validate and normalise the `auth` field of a `wsProxy` route rule at build time. Throws a
 * `TypeError` whose message names the field and the remedy; refuses any password or secret
 * (route rules ship in plain text in the build output).
 *
 * `undefined`/`false` give `{ session: false, ... }` (no authentication); `true` is short for
 * `{ session: true }`.
 *
 * @example validateAuthRule('/live/**', { session: true, allowedOrigins: ['https://app.example.com'] })
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
    fail(` must be an object like { session: true }, true or false (got ${describe(value)}).`)
  }

  const envs = options.passwordEnv
    ? (typeof options.passwordEnv === 'string' ? options.passwordEnv : options.passwordEnv.join(' / '))
    : `${NITRO_PASSWORD_ENV} (Nuxt: ${NUXT_PASSWORD_ENV} or ${NUXT_SESSION_PASSWORD_ENV})`
  const secretPath = findSecretKey(value as Record<string, unknown>)
  if (secretPath) {
    fail(`${secretPath} must not be set: route rules are written in plain text into the build output. Set the session password with the ${envs} environment variable (runtime config), never in routeRules.`)
  }

  const input = value as Record<string, unknown>
  for (const key of Object.keys(input)) {
    if (!(KNOWN_KEYS as readonly string[]).includes(key)) {
      fail(`.${key} is not an option. Known options: ${KNOWN_KEYS.join(', ')}.`)
    }
  }

  if (typeof input.session !== 'boolean') {
    fail(`.session must be true (require a session with a user) or false (got ${describe(input.session)}). It is the only authentication method, so it is required.`)
  }
  normalized.session = input.session as boolean

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
