/**
 * The live view's routes in a Nitro instance (createNitro runs the module): registered in
 * development only, once, and again after a dev config reload.
 */
import { describe, expect, it } from 'vitest'
import { DEVTOOLS_ROUTE } from '../../src/nitro/module'
import { fixtureDir } from '../nitro/harness'

async function devtoolsHandlers(dev: boolean, edit?: (nitro: any) => Promise<void>) {
  const { createNitro } = await import('nitropack/core')
  const nitro = await createNitro({ rootDir: fixtureDir('nitro-app'), dev, ...(dev ? {} : { preset: 'node-server' }), logLevel: 0 })
  try {
    await edit?.(nitro)
    return nitro.options.handlers
      .filter(h => h.route?.startsWith(DEVTOOLS_ROUTE))
      .map(h => ({ route: h.route, method: h.method, file: String(h.handler).replace(/^.*\/dist\//, 'dist/') }))
  }
  finally {
    await nitro.close()
  }
}

describe('live view routes', () => {
  const expected = [
    { route: '/_ws-proxy/devtools', method: 'get', file: 'dist/runtime/devtools-page.mjs' },
    { route: '/_ws-proxy/devtools/state', method: 'get', file: 'dist/runtime/devtools-state.mjs' },
  ]

  it('are registered under nitropack dev, once, also after a config reload', async () => {
    expect(await devtoolsHandlers(true)).toEqual(expected)
    expect(await devtoolsHandlers(true, async (nitro) => {
      await nitro.updateConfig({ routeRules: { '/feed/**': { wsProxy: 'ws://127.0.0.1:9/**' } } })
    })).toEqual(expected)
  })

  it('are not part of a build', async () => {
    expect(await devtoolsHandlers(false)).toEqual([])
  })
})

describe('the Nuxt DevTools tab', () => {
  /** A stand-in for the parts of `nuxt` the tab uses: its options and `hook`. */
  function fakeNuxt(dev: boolean, baseURL = '/') {
    const hooks: Record<string, Array<(...args: any[]) => unknown>> = {}
    return {
      options: { dev, app: { baseURL } },
      hook: (name: string, fn: (...args: any[]) => unknown) => { (hooks[name] ||= []).push(fn) },
      /** What DevTools does: call `devtools:customTabs` with its list. */
      tabs: async () => {
        const tabs: unknown[] = []
        for (const fn of hooks['devtools:customTabs'] ?? []) await fn(tabs)
        return tabs
      },
    }
  }

  it('is an iframe of the live view (below baseURL), added once, in development only', async () => {
    const { addDevtoolsTab } = await import('../../src/nuxt/devtools')
    const dev = fakeNuxt(true, '/app/')
    addDevtoolsTab(dev as any)
    addDevtoolsTab(dev as any)
    expect(await dev.tabs()).toEqual([{
      name: 'ws-proxy',
      title: 'WebSocket proxy',
      icon: 'carbon:network-3',
      category: 'server',
      view: { type: 'iframe', src: '/app/_ws-proxy/devtools' },
    }])
    const build = fakeNuxt(false)
    addDevtoolsTab(build as any)
    expect(await build.tabs()).toEqual([])
  })
})
