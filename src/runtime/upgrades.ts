/**
 * Nitro 3 only (the module adds it as a generated plugin). Nitro 3 resolves the hooks of an
 * upgrade by running the whole app on the upgrade request (`resolveWebsocketHooks`: the route
 * rules middleware, the app's global and routed middleware, then the route), and an upgrade
 * whose answer carries no hooks is accepted with empty ones. This plugin wraps the app's
 * `fetch` for upgrade requests only:
 * - on a proxied route the rule's hooks answer at once, before any middleware (as on nitropack
 *   2, where middleware never sees upgrades: a rule's `auth` and the `ws-proxy:auth` hook decide);
 * - elsewhere the app answers as usual; when no WebSocket handler took the upgrade, it is refused
 *   (404, or the app's own error status), where Nitro 3 would open a socket that relays nothing.
 * Plain HTTP requests are passed on untouched.
 */
import { rejectUpgrade } from '../core/reject'
import { WS_PROXY_HOOKS } from './handler'
import { unmatchedRefusals } from './observe'
import { pathBelow, rawRequestUrl, splitRequestUrl } from './target'

/** One proxied rule: its handler routes (`['/live/**', '/live']`) and its generated handler. */
export interface UpgradeRoute {
  routes: string[]
  handler: unknown
}

interface NitroAppLike {
  fetch: (request: Request) => Response | Promise<Response>
}

/** The key h3 2 and Nitro 3 use to hand WebSocket hooks over on the request. */
const kWebSocketHooks = Symbol.for('crossws.hooks')

function refuse(status: number, text: string) {
  unmatchedRefusals[status] = (unmatchedRefusals[status] ?? 0) + 1
  return rejectUpgrade(status, text)
}

const NOT_FOUND = Object.freeze({ upgrade: () => refuse(404, 'Not Found') })

function hooksResponse(hooks: unknown): Response {
  return Object.assign(new Response('WebSocket upgrade is required.', { status: 426 }), { crossws: hooks })
}

/** Create the plugin for `routes` (`baseURL()`: the app's base URL at runtime). */
export function defineWsProxyUpgrades(routes: UpgradeRoute[], baseURL: () => string | undefined) {
  const table = routes.map(({ routes: patterns, handler }) => ({
    patterns: patterns.map(pattern => pattern.endsWith('/**') ? { prefix: pattern.slice(0, -3), wildcard: true } : { prefix: pattern, wildcard: false }),
    hooks: (handler as Record<string, unknown> | undefined)?.[WS_PROXY_HOOKS],
  }))

  const match = (path: string): unknown => {
    for (const entry of table) {
      if (!entry.hooks) continue
      for (const { prefix, wildcard } of entry.patterns) {
        // The raw path, not a normalised one: the handler refuses escapes (`/live/%2e%2e/x`) with 400.
        if (path === prefix || (wildcard && (prefix === '' || path.startsWith(`${prefix}/`)))) return entry.hooks
      }
    }
    return undefined
  }

  return (nitroApp: NitroAppLike): void => {
    const base = (baseURL() || '/').replace(/\/+$/, '')
    const fetch = nitroApp.fetch
    nitroApp.fetch = (request: Request) => {
      if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') return fetch(request)
      const { path } = splitRequestUrl(rawRequestUrl(request))
      const local = base ? pathBelow(path, base) : path
      const hooks = local === undefined ? undefined : match(local || '/')
      if (hooks) return hooksResponse(hooks)
      return Promise.resolve(fetch(request)).then((response) => {
        const carrier = request as unknown as Record<symbol, unknown> & { context?: Record<symbol, unknown> }
        if ((response as { crossws?: unknown }).crossws || carrier[kWebSocketHooks] || carrier.context?.[kWebSocketHooks]) return response
        // No WebSocket handler took it: refuse with the app's own error, else 404.
        if (response.status >= 400 && response.status !== 426) {
          return hooksResponse({ upgrade: () => { unmatchedRefusals[response.status] = (unmatchedRefusals[response.status] ?? 0) + 1; return response } })
        }
        return hooksResponse(NOT_FOUND)
      })
    }
  }
}
