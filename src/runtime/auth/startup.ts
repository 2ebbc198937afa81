/**
 * The server-start check of the session password: a Nitro plugin that the module adds only when
 * a rule has `auth.session === true`. A protected route without a usable password must stop the
 * server, not answer 500 at the first upgrade (and never serve an open route).
 */
import { assertSessionPassword, resolveSessionConfig } from './config'

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
