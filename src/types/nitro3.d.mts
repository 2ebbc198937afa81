// Nitro 3 (the `nitro` package, h3 2) type augmentations of nitro-ws-proxy: `wsProxy` in route
// rules (h3 2's `h3/rules`, which Nitro 3's route rules are), the module options in the Nitro
// config, and the runtime hooks. Referenced from nitro.d.mts and nuxt.d.mts; in a nitropack 2
// project these modules do not exist and (with `skipLibCheck`, as Nitro's and Nuxt's tsconfigs
// set) nothing here applies.
import type { WsProxyAuthContext, WsProxyCloseEvent, WsProxyModuleOptions, WsProxyOpenEvent, WsProxyRule } from './nitro.mjs'

declare module 'h3/rules' {
  interface RouteRuleConfig {
    /**
     * Proxy WebSocket upgrades on this route to an upstream: a target URL
     * (`'ws://127.0.0.1:8080/**'`) or options. See nitro-ws-proxy's README.
     */
    wsProxy?: WsProxyRule
    /** Same as `wsProxy`. */
    'ws-proxy'?: WsProxyRule
  }
  interface RouteRules {
    wsProxy?: WsProxyRule
    'ws-proxy'?: WsProxyRule
  }
}

declare module 'nitro/types' {
  interface NitroRuntimeHooks {
    'ws-proxy:auth': (ctx: WsProxyAuthContext) => void | Promise<void>
    'ws-proxy:open': (event: WsProxyOpenEvent) => void | Promise<void>
    'ws-proxy:close': (event: WsProxyCloseEvent) => void | Promise<void>
  }
  interface NitroOptions {
    /** nitro-ws-proxy module options. */
    wsProxy?: WsProxyModuleOptions
  }
}
