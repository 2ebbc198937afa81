/**
 * The "WebSocket proxy" tab of Nuxt DevTools: an iframe of the dev-only live view that the Nitro
 * module serves at `/_ws-proxy/devtools` (runtime/devtools-page.ts).
 *
 * Registered through DevTools' `devtools:customTabs` hook, which is all `@nuxt/devtools-kit`'s
 * `addCustomTab` does: no import of DevTools, so apps without it (or with it disabled) are
 * untouched; nobody calls the hook there.
 */
import type { Nuxt } from '@nuxt/schema'
import { DEVTOOLS_ROUTE } from '../nitro/module'

/** The tab's `name` (unique among DevTools tabs); its page is `/__nuxt_devtools__/client/modules/custom-ws-proxy`. */
export const DEVTOOLS_TAB_NAME = 'ws-proxy'

/** The part of `@nuxt/devtools-kit`'s `ModuleCustomTab` we fill. */
export interface WsProxyDevtoolsTab {
  name: string
  title: string
  icon: string
  category: 'pinned' | 'app' | 'analyze' | 'server' | 'modules' | 'advanced'
  view: { type: 'iframe', src: string, persistent?: boolean }
}

/** The tab, for an app served under `baseURL` (`app.baseURL`, `/` by default). */
export function devtoolsTab(baseURL = '/'): WsProxyDevtoolsTab {
  return {
    name: DEVTOOLS_TAB_NAME,
    title: 'WebSocket proxy',
    icon: 'carbon:network-3',
    category: 'server',
    view: { type: 'iframe', src: `${baseURL.replace(/\/+$/, '')}${DEVTOOLS_ROUTE}` },
  }
}

/** Add the tab (development only: the view's routes exist only there). */
export function addDevtoolsTab(nuxt: Nuxt): void {
  if (!nuxt.options.dev) return
  // `devtools:customTabs` is declared by @nuxt/devtools-kit, which we do not depend on.
  const hook = nuxt.hook as unknown as (name: 'devtools:customTabs', fn: (tabs: WsProxyDevtoolsTab[]) => void) => void
  hook('devtools:customTabs', (tabs) => {
    if (!tabs.some(tab => tab.name === DEVTOOLS_TAB_NAME)) tabs.push(devtoolsTab(nuxt.options.app?.baseURL))
  })
}
