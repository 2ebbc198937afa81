import type { WsProxyRule, WsProxyRuleOptions } from '../runtime/options'

export type { WsProxyRule, WsProxyRuleOptions }

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

declare module 'nitropack/types' {
  interface NitroRouteConfig extends WsProxyRouteConfig {}
  interface NitroRouteRules extends WsProxyRouteConfig {}
  interface NitroOptions {
    /** nitro-ws-proxy module options. */
    wsProxy?: WsProxyModuleOptions
  }
}

declare module 'nitropack' {
  interface NitroRouteConfig extends WsProxyRouteConfig {}
  interface NitroRouteRules extends WsProxyRouteConfig {}
  interface NitroOptions {
    /** nitro-ws-proxy module options. */
    wsProxy?: WsProxyModuleOptions
  }
}
