/**
 * `useWsProxy()`: the proxied routes of this server, from server code (auto-imported in Nitro
 * and Nuxt server files).
 */
import type { WebSocketProxyStats } from '../core/types'
import { wsProxies } from './handler'

/** Which connections {@link WsProxyControl.close} closes. */
export interface WsProxyCloseFilter {
  /** Only this route (the `routeRules` key, e.g. `'/live/**'`). */
  route?: string
  /**
   * Only connections whose user (the session user of an `auth` route) passes this test.
   * Connections without a user never match.
   */
  user?: (user: any) => boolean
}

/** What {@link useWsProxy} returns. */
export interface WsProxyControl {
  /**
   * Close the matching connections, both legs with `code` (1008 Policy Violation) and `reason`,
   * e.g. every socket of a user who logged out. Returns how many were closed.
   */
  close: (filter?: WsProxyCloseFilter, code?: number, reason?: string) => number
  /** Counters per route (`routeRules` key), each with per-upstream counters in `upstreams`. */
  stats: () => Record<string, WebSocketProxyStats>
}

/**
 * The proxied routes of this server.
 *
 * @example
 * ```ts
 * // server/api/logout.post.ts: close the user's sockets on logout
 * export default defineEventHandler(async (event) => {
 *   const { user } = await requireUserSession(event)
 *   await clearUserSession(event)
 *   useWsProxy().close({ user: u => u.id === user.id }, 1008, 'Logged out')
 * })
 * ```
 */
export function useWsProxy(): WsProxyControl {
  return CONTROL
}

const CONTROL: WsProxyControl = {
  close(filter = {}, code = 1008, reason = 'Revoked') {
    const { route, user } = filter
    let closed = 0
    for (const [key, proxy] of wsProxies) {
      if (route !== undefined && key !== route) continue
      closed += proxy.closeMatching(
        user ? peer => peer.context?.user !== undefined && user(peer.context.user) === true : () => true,
        code,
        reason,
      )
    }
    return closed
  },
  stats() {
    const result: Record<string, WebSocketProxyStats> = {}
    for (const [route, proxy] of wsProxies) result[route] = proxy.stats()
    return result
  },
}
