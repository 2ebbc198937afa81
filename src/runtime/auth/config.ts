import type { AuthJwtConfig, AuthSessionConfig } from './types'
import { MIN_JWT_SECRET_LENGTH, MIN_PASSWORD_LENGTH, NITRO_JWT_SECRET_ENV, NITRO_PASSWORD_ENV, NUXT_JWT_SECRET_ENV, NUXT_PASSWORD_ENV, NUXT_SESSION_PASSWORD_ENV } from './types'

function formatEnv(envVarName: string | readonly string[]): string {
  const names = typeof envVarName === 'string' ? [envVarName] : [...envVarName]
  return names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names.at(-1)}` : names[0] ?? NITRO_PASSWORD_ENV
}

/**
 * Why the session password cannot be used, or `undefined` when it can. The message names the
 * variable to set and never contains the password.
 */
export function getSessionPasswordProblem(
  config: { password?: unknown } | undefined,
  envVarName: string | readonly string[] = NITRO_PASSWORD_ENV,
  routes?: readonly string[],
): string | undefined {
  const password = config?.password
  const where = routes?.length
    ? `routeRules ${routes.map(route => `'${route}'`).join(', ')} ${routes.length > 1 ? 'are' : 'is'} protected by wsProxy.auth.session`
    : 'A route is protected by wsProxy.auth.session'
  const remedy = `Set ${formatEnv(envVarName)} to a random string of at least ${MIN_PASSWORD_LENGTH} characters (e.g. \`openssl rand -base64 32\`).`
  if (password === undefined || password === null || password === '') {
    return `[nitro-ws-proxy] ${where} but no session password is set. ${remedy}`
  }
  if (typeof password !== 'string') {
    return `[nitro-ws-proxy] ${where} but the session password is not a string (an all-digit value is read as a number: include letters). ${remedy}`
  }
  if (password.length < MIN_PASSWORD_LENGTH) {
    return `[nitro-ws-proxy] ${where} but the session password is shorter than ${MIN_PASSWORD_LENGTH} characters. ${remedy}`
  }
  return undefined
}

/**
 * Throw a `TypeError` naming the variable to set when the session password is missing, not a
 * string or shorter than 32 characters. Call it at server start (a Nitro plugin) whenever a route
 * has `auth.session`, so a misconfigured server fails loudly instead of serving an open route.
 */
export function assertSessionPassword(
  config: { password?: unknown } | undefined,
  envVarName: string | readonly string[] = NITRO_PASSWORD_ENV,
  routes?: readonly string[],
): asserts config is { password: string } {
  const problem = getSessionPasswordProblem(config, envVarName, routes)
  if (problem) {
    throw new TypeError(problem)
  }
}

/** Session options resolved from runtime config, and the env variable(s) that set the password. */
export interface ResolvedSessionConfig {
  session: AuthSessionConfig
  /** Variables to name when the password is missing. */
  passwordEnv: string[]
}

function nonEmpty(value: unknown): unknown {
  return value === '' || value === null || value === undefined ? undefined : value
}

function positiveNumber(value: unknown): number | undefined {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : undefined
}

/**
 * Resolve the session options from the server's runtime config (`useRuntimeConfig()`).
 *
 * - Nitro: `runtimeConfig.wsProxy.session` (`password` overridable by
 *   `NITRO_WS_PROXY_SESSION_PASSWORD`); cookie `h3` by default.
 * - Nuxt: `runtimeConfig.wsProxy.session` (`NUXT_WS_PROXY_SESSION_PASSWORD`); each unset field
 *   falls back to the app's `runtimeConfig.session` (nuxt-auth-utils: password from
 *   `NUXT_SESSION_PASSWORD`), cookie `nuxt-session` by default.
 *
 * @param env Defaults to `process.env`; read as a fallback when the runtime config key is empty.
 */
export function resolveSessionConfig(
  runtimeConfig: Record<string, any> | undefined,
  framework: 'nitro' | 'nuxt',
  env: Record<string, string | undefined> = globalThis.process?.env ?? {},
): ResolvedSessionConfig {
  const own = (runtimeConfig?.wsProxy?.session ?? {}) as Record<string, unknown>
  if (framework === 'nitro') {
    return {
      session: {
        password: (nonEmpty(own.password) ?? nonEmpty(env[NITRO_PASSWORD_ENV])) as string | undefined,
        name: (nonEmpty(own.name) as string | undefined) ?? 'h3',
        maxAge: positiveNumber(own.maxAge),
        seal: own.seal as AuthSessionConfig['seal'],
      },
      passwordEnv: [NITRO_PASSWORD_ENV],
    }
  }
  const app = (runtimeConfig?.session ?? {}) as Record<string, unknown>
  // nuxt-auth-utils reads `${envPrefix}SESSION_PASSWORD` itself at runtime; do the same.
  const prefix = (runtimeConfig?.nitro?.envPrefix as string | undefined) || 'NUXT_'
  const appEnv = `${prefix}SESSION_PASSWORD`
  return {
    session: {
      password: (nonEmpty(own.password) ?? nonEmpty(env[NUXT_PASSWORD_ENV])
        ?? nonEmpty(env[appEnv]) ?? nonEmpty(app.password)) as string | undefined,
      name: (nonEmpty(own.name) ?? nonEmpty(app.name) ?? 'nuxt-session') as string,
      maxAge: positiveNumber(own.maxAge) ?? positiveNumber(app.maxAge),
      seal: (own.seal ?? app.seal) as AuthSessionConfig['seal'],
    },
    passwordEnv: [NUXT_PASSWORD_ENV, appEnv === NUXT_SESSION_PASSWORD_ENV ? NUXT_SESSION_PASSWORD_ENV : appEnv],
  }
}

/** Why the JWT secret cannot be used, or `undefined` when it can. Never contains the secret. */
export function getJwtSecretProblem(secret: unknown, envVarName: string = NITRO_JWT_SECRET_ENV, routes?: readonly string[]): string | undefined {
  const where = routes?.length
    ? `routeRules ${routes.map(route => `'${route}'`).join(', ')} ${routes.length > 1 ? 'are' : 'is'} protected by wsProxy.auth.jwt without jwks`
    : 'A route is protected by wsProxy.auth.jwt without jwks'
  const remedy = `Set ${envVarName} to the secret the token issuer signs with (HS256/384/512), at least ${MIN_JWT_SECRET_LENGTH} characters (e.g. \`openssl rand -base64 32\`), or give the rule a jwks URL.`
  if (secret === undefined || secret === null || secret === '') {
    return `[nitro-ws-proxy] ${where} but no JWT secret is set. ${remedy}`
  }
  if (typeof secret !== 'string') {
    return `[nitro-ws-proxy] ${where} but the JWT secret is not a string (an all-digit value is read as a number: include letters). ${remedy}`
  }
  if (new TextEncoder().encode(secret).byteLength < MIN_JWT_SECRET_LENGTH) {
    return `[nitro-ws-proxy] ${where} but the JWT secret is shorter than ${MIN_JWT_SECRET_LENGTH} bytes. ${remedy}`
  }
  return undefined
}

/** JWT settings resolved from runtime config, and the env variable that sets the secret. */
export interface ResolvedJwtConfig {
  jwt: AuthJwtConfig
  /** The variable to name when the secret is missing. */
  secretEnv: string
}

/**
 * Resolve the JWT settings from the server's runtime config: `runtimeConfig.wsProxy.jwt.secret`,
 * set by `NITRO_WS_PROXY_JWT_SECRET` (Nuxt: `NUXT_WS_PROXY_JWT_SECRET`).
 *
 * @param env Defaults to `process.env`; read as a fallback when the runtime config key is empty.
 */
export function resolveJwtConfig(
  runtimeConfig: Record<string, any> | undefined,
  framework: 'nitro' | 'nuxt',
  env: Record<string, string | undefined> = globalThis.process?.env ?? {},
): ResolvedJwtConfig {
  const own = (runtimeConfig?.wsProxy?.jwt ?? {}) as Record<string, unknown>
  const secretEnv = framework === 'nuxt' ? NUXT_JWT_SECRET_ENV : NITRO_JWT_SECRET_ENV
  return {
    jwt: { secret: (nonEmpty(own.secret) ?? nonEmpty(env[secretEnv])) as string | undefined },
    secretEnv,
  }
}

/**
 * Throw a `TypeError` naming the variable to set when the JWT secret is missing, not a string or
 * shorter than 32 bytes. Call it at server start whenever a `jwt` route has no `jwks`.
 */
export function assertJwtSecret(
  config: { secret?: unknown } | undefined,
  envVarName: string = NITRO_JWT_SECRET_ENV,
  routes?: readonly string[],
): asserts config is { secret: string } {
  const problem = getJwtSecretProblem(config?.secret, envVarName, routes)
  if (problem) {
    throw new TypeError(problem)
  }
}
