/**
 * `nitro-ws-proxy/runtime`: what server code of the app calls, by explicit import. Nitro 3 has
 * no auto-imports, so this is how a Nitro 3 (and Nuxt 5) app reaches `useWsProxy()` and
 * `renderWsProxyMetrics()`; on nitropack 2 and Nuxt 3/4 they are also auto-imported.
 *
 * The module aliases this entry to the runtime files its own route handlers run, so the
 * import always sees the connections of this server (never a second copy with empty state).
 *
 * @example
 * ```ts
 * // server/routes/logout.post.ts (Nitro 3)
 * import { defineHandler } from 'nitro'
 * import { useWsProxy } from 'nitro-ws-proxy/runtime'
 * export default defineHandler(() => {
 *   return { closed: useWsProxy().close({ route: '/live/**' }, 1008, 'Logged out') }
 * })
 * ```
 */
export { useWsProxy, type WsProxyCloseFilter, type WsProxyControl } from './use-ws-proxy'
export { renderMetrics as renderWsProxyMetrics } from './metrics'
