/**
 * The server-start checks of auth secrets: Nitro plugins that the module adds only when a rule
 * needs them (`auth.session`; `auth.jwt` without `jwks`). A protected route without a usable
 * secret must stop the server, not answer 500 at the first upgrade (and never serve an open route).
 */
import { assertJwtSecret, assertSessionPassword, resolveJwtConfig, resolveSessionConfig } from './config'

/** Input of {@link defineSessionPasswordCheck}; written by the Nitro module's generated plugin. */
export interface SessionPasswordCheckInput {
  /** The session-protected routes, for the message (`'/live/**'`). */
  routes: string[]
  /** Which runtime config and env names apply. */
  framework: 'nitro' | 'nuxt'
  /** `useRuntimeConfig` of the server (injected: the runtime files import no Nitro internals). */
  useRuntimeConfig: () => Record<string, any>
}

/**
 * A Nitro plugin that throws a `TypeError` naming the env variable to set when the session
 * password is missing, not a string or shorter than 32 characters. Nitro rethrows a plugin's
 * error while it creates the app, so the server process exits before it listens.
 *
 * Skipped while prerendering (`nitropack build` with prerendered routes, `nuxi generate`): the
 * prerenderer serves pages, not upgrades, and has no production secrets.
 */
export function defineSessionPasswordCheck(input: SessionPasswordCheckInput): () => void {
  return function wsProxySessionPasswordCheck() {
    if ((import.meta as { prerender?: boolean }).prerender) return
    const { session, passwordEnv } = resolveSessionConfig(input.useRuntimeConfig(), input.framework)
    assertSessionPassword(session, passwordEnv, input.routes)
  }
}

/** Input of {@link defineJwtSecretCheck}; written by the Nitro module's generated plugin. */
export interface JwtSecretCheckInput {
  /** The `jwt` routes without `jwks`, for the message. */
  routes: string[]
  framework: 'nitro' | 'nuxt'
  useRuntimeConfig: () => Record<string, any>
}

/**
 * A Nitro plugin that throws a `TypeError` naming the env variable to set when a `jwt` route
 * without `jwks` has no usable secret (missing, not a string, shorter than 32 bytes). Skipped
 * while prerendering, like {@link defineSessionPasswordCheck}.
 */
export function defineJwtSecretCheck(input: JwtSecretCheckInput): () => void {
  return function wsProxyJwtSecretCheck() {
    if ((import.meta as { prerender?: boolean }).prerender) return
    const { jwt, secretEnv } = resolveJwtConfig(input.useRuntimeConfig(), input.framework)
    assertJwtSecret(jwt, secretEnv, input.routes)
  }
}
