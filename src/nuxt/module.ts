import { defineNuxtModule } from '@nuxt/kit'
import { defu } from 'defu'
import type { NitroConfig } from 'nitropack/types'
import { guardNuxtDevServer } from '../nitro/dev-guard'
import { addDevtoolsTab } from './devtools'
import { bridgeDevUpgrades } from './dev-upgrades'
import wsProxyNitroModule, { addServerUtilPresets } from '../nitro/module'
import type { WsProxyModuleOptions } from '../nitro/types'

/** Options of the Nuxt module (`wsProxy` in `nuxt.config`); same as the Nitro module's. */
export interface ModuleOptions extends WsProxyModuleOptions {}

/**
 * Nuxt module: installs the Nitro module into Nuxt's server. Proxied routes are declared in
 * `routeRules` exactly as in Nitro; env overrides use `NUXT_WS_PROXY_...` (or `NITRO_...`).
 *
 * @example
 * export default defineNuxtConfig({
 *   modules: ['nitro-ws-proxy/nuxt'],
 *   routeRules: { '/live/**': { wsProxy: 'ws://127.0.0.1:8080/**' } },
 * })
 */
export default defineNuxtModule<ModuleOptions>({
  meta: {
    name: 'nitro-ws-proxy',
    configKey: 'wsProxy',
    compatibility: { nuxt: '>=3.12.0' },
  },
  defaults: {},
  setup(options, nuxt) {
    // `nitro:config` is typed by @nuxt/nitro-server, which we do not depend on.
    const hook = nuxt.hook as unknown as (name: 'nitro:config', fn: (config: NitroConfig) => void) => void
    hook('nitro:config', (nitroConfig) => {
      nitroConfig.wsProxy = defu(nitroConfig.wsProxy, options) as WsProxyModuleOptions
      nitroConfig.modules ||= []
      nitroConfig.modules.push(wsProxyNitroModule)
      // `useWsProxy()` in server/: Nuxt 5 takes its server auto-imports from here, before Nitro
      // modules run (on Nuxt 3 and 4 the Nitro module adds the same presets, once).
      if (nitroConfig.imports) addServerUtilPresets(nitroConfig.imports as { presets?: unknown[] })
    })
    if (nuxt.options.dev) {
      // `nuxi dev`: a client resetting mid-handshake must not restart Nuxt (see dev-guard.ts).
      nuxt.hook('ready', () => guardNuxtDevServer((nuxt as { server?: { upgrade?: unknown } }).server))
      // `nuxi dev` on Nuxt 5: give Nitro 3's Vite plugin the upgrades (see dev-upgrades.ts).
      bridgeDevUpgrades(nuxt as unknown as Parameters<typeof bridgeDevUpgrades>[0])
      // Nuxt DevTools: a "WebSocket proxy" tab showing the dev-only live view.
      addDevtoolsTab(nuxt)
    }
  },
})

declare module '@nuxt/schema' {
  interface NuxtConfig {
    /** nitro-ws-proxy options. Proxied routes go in `routeRules` (`wsProxy`). */
    wsProxy?: Partial<ModuleOptions>
  }
  interface NuxtOptions {
    /** nitro-ws-proxy options. */
    wsProxy?: ModuleOptions
  }
}
