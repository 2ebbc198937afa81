import type { AuthRuleInput, JwtRuleInput, WsProxyAuthContext } from '../runtime/auth/types'
import type { WsProxyRule, WsProxyRuleOptions } from '../runtime/options'
import type { WsProxyShutdownOptions } from '../runtime/shutdown'
import type { WsProxyCloseEvent, WsProxyOpenEvent } from '../runtime/observe'

export type { AuthRuleInput, JwtRuleInput, WsProxyAuthContext, WsProxyCloseEvent, WsProxyOpenEvent, WsProxyRule, WsProxyRuleOptions, WsProxyShutdownOptions }

/** Options of the Nitro module: `wsProxy` in `nitro.config` (and of the Nuxt module). */
export interface WsProxyModuleOptions {
  /**
   * Options applied to every `wsProxy` rule that does not set them itself (not `target`/`name`).
   * @example { connectTimeout: 5000, heartbeatInterval: 20000 }
   */
  defaults?: Partial<Omit<WsProxyRuleOptions, 'target' | 'name'>>
  /**
   * Upstream client: `'auto'` uses the `ws` package on Node presets (needed for `x-forwarded-*`,
   * `headers` and `ws+unix:`) and the runtime's global `WebSocket` elsewhere.
   * @default 'auto'
   */
  client?: 'auto' | 'ws' | 'global'
  /**
   * How connections are closed when the server shuts down (SIGTERM/SIGINT, Nitro's `close`):
   * upgrades get 503, open connections are closed spread over `spread` ms.
   * @default { spread: 10000, code: 1001, reason: 'Server shutting down' }
   */
  shutdown?: WsProxyShutdownOptions
  /**
   * Serve Prometheus metrics of every proxied route (text exposition format 0.0.4) at `path`:
   * connections, closes by cause, bytes and messages each way, refusals by status, per-upstream
   * health and histograms. Off by default: an endpoint is only added when asked for. Readable with
   * `Authorization: Bearer <token>` when `NITRO_WS_PROXY_METRICS_TOKEN` is set, else by loopback
   * clients only; everyone else gets 404.
   * @default false
   * @example true // or { path: '/internal/ws-metrics' }
   */
  metrics?: boolean | WsProxyMetricsOptions
  /**
   * One line per ended connection on the server's console: `true`/`'text'` as `key=value` pairs,
   * `'json'` as one JSON object. Off by default (a line per connection is noise until wanted);
   * env `NITRO_WS_PROXY_ACCESS_LOG` (`text`, `json`, `false`) overrides it at runtime.
   * @default false
   */
  accessLog?: boolean | 'text' | 'json'
}

/** Options of the metrics endpoint (module option `metrics`). */
export interface WsProxyMetricsOptions {
  /**
   * Path of the endpoint (below the app's `baseURL`).
   * @default '/_ws-proxy/metrics'
   */
  path?: string
}

/** The `runtimeConfig.wsProxy.<name>` entries the module writes (one per rule). */
export type WsProxyRuntimeConfig = Record<string, Omit<WsProxyRuleOptions, 'name' | 'auth'>>

interface WsProxyRouteConfig {
  /**
   * Proxy WebSocket upgrades on this route to an upstream: a target URL
   * (`'ws://127.0.0.1:8080/**'`) or options. See nitro-ws-proxy's README.
   */
  wsProxy?: WsProxyRule
  /** Same as `wsProxy`. */
  'ws-proxy'?: WsProxyRule
}


/** Runtime hooks nitro-ws-proxy calls (`nitroApp.hooks.hook(...)` in a server plugin). */
interface WsProxyRuntimeHooks {
  /**
   * An upgrade on a route with `auth` (any method); nothing is dialled yet. On `session` and `jwt`
   * routes the built-in checks passed (origin, session or token, user, `requireUser`); on `hook`
   * routes (`auth: { hook: true }`) only the origin check ran, and the hook decides by setting
   * `ctx.user` (none: 401). Set `ctx.deny` to refuse, edit `ctx.headers` to change what the
   * upstream receives, lower `ctx.expiresAt` to end the connection earlier.
   * @example
   * nitroApp.hooks.hook('ws-proxy:auth', async (ctx) => {
   *   if (ctx.method !== 'hook') return
   *   const found = await auth.api.getSession({ headers: ctx.request.headers }) // Better Auth
   *   if (found) ctx.user = { id: found.user.id, name: found.user.name }
   * })
   */
  'ws-proxy:auth': (ctx: WsProxyAuthContext) => void | Promise<void>
  /**
   * A proxied connection's upstream opened: route, connection id, client address, upstream URL
   * (no query string), user (routes with `auth`). Not awaited.
   */
  'ws-proxy:open': (event: WsProxyOpenEvent) => void | Promise<void>
  /**
   * A proxied connection ended (exactly once per connection, however it ended): the open fields
   * plus duration, bytes and messages each way, the close each leg saw, who ended it and why.
   * Not awaited.
   */
  'ws-proxy:close': (event: WsProxyCloseEvent) => void | Promise<void>
}

declare module 'nitropack/types' {
  interface NitroRuntimeHooks extends WsProxyRuntimeHooks {}
  interface NitroRouteConfig extends WsProxyRouteConfig {}
  interface NitroRouteRules extends WsProxyRouteConfig {}
  interface NitroOptions {
    /** nitro-ws-proxy module options. */
    wsProxy?: WsProxyModuleOptions
  }
}

declare module 'nitropack' {
  interface NitroRuntimeHooks extends WsProxyRuntimeHooks {}
  interface NitroRouteConfig extends WsProxyRouteConfig {}
  interface NitroRouteRules extends WsProxyRouteConfig {}
  interface NitroOptions {
    /** nitro-ws-proxy module options. */
    wsProxy?: WsProxyModuleOptions
  }
}
