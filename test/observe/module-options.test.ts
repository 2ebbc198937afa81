/**
 * The module options `metrics` and `accessLog` in a Nitro instance (createNitro runs the module,
 * as the first step of a build): what they register and write into the runtime config, and the
 * build errors that name the field.
 */
import { describe, expect, it } from 'vitest'
import { DEFAULT_METRICS_PATH, METRICS_HANDLER, resolveObserveOptions } from '../../src/nitro/module'
import { fixtureDir } from '../nitro/harness'

async function withNitro<T>(name: string, overrides: Record<string, unknown>, fn: (nitro: any) => T): Promise<T | string> {
  const { createNitro } = await import('nitropack/core')
  let nitro
  try {
    nitro = await createNitro({ rootDir: fixtureDir(name), dev: false, preset: 'node-server', logLevel: 0, ...overrides } as any)
  }
  catch (error) {
    return `error: ${(error as Error).message}`
  }
  try {
    return fn(nitro)
  }
  finally {
    await nitro.close()
  }
}

describe('module options metrics and accessLog', () => {
  it('metrics: true registers a plain HTTP handler at /_ws-proxy/metrics, a private token key, the access log format and the auto-import', async () => {
    const result = await withNitro('observe-app', {}, (nitro) => {
      const handler = nitro.options.handlers.find((h: { handler: string }) => h.handler === METRICS_HANDLER)
      const runtimeConfig = nitro.options.runtimeConfig
      const presets = nitro.options.imports.presets as Array<{ from: string, imports: unknown[] }>
      return {
        route: handler?.route,
        method: handler?.method,
        code: (nitro.options.virtual[METRICS_HANDLER] as string),
        metrics: runtimeConfig.wsProxy.metrics,
        accessLog: runtimeConfig.wsProxy.accessLog,
        public: JSON.stringify(runtimeConfig.public ?? {}),
        autoImport: presets.find(p => p.from.endsWith('/runtime/metrics.mjs'))?.imports,
      }
    })
    expect(result).toMatchObject({
      route: DEFAULT_METRICS_PATH,
      method: undefined,
      metrics: { token: '' },
      accessLog: 'json',
      autoImport: [{ name: 'renderMetrics', as: 'renderWsProxyMetrics' }],
    })
    const { code, public: pub } = result as { code: string, public: string }
    expect(code).toContain('defineWsProxyMetricsHandler({ token: () => useRuntimeConfig().wsProxy?.metrics?.token })')
    expect(pub).not.toContain('wsProxy')
  }, 30_000)

  it('a custom path; off by default (no handler, no token key, access log off but overridable by env)', async () => {
    expect(await withNitro('observe-app', { wsProxy: { metrics: { path: '/internal/ws-metrics' }, accessLog: true } }, nitro => ({
      route: nitro.options.handlers.find((h: { handler: string }) => h.handler === METRICS_HANDLER)?.route,
      accessLog: nitro.options.runtimeConfig.wsProxy.accessLog,
    }))).toEqual({ route: '/internal/ws-metrics', accessLog: 'text' })
    expect(await withNitro('nitro-app', {}, nitro => ({
      handlers: nitro.options.handlers.filter((h: { handler: string }) => h.handler === METRICS_HANDLER).length,
      metrics: nitro.options.runtimeConfig.wsProxy.metrics,
      accessLog: nitro.options.runtimeConfig.wsProxy.accessLog,
    }))).toEqual({ handlers: 0, metrics: undefined, accessLog: '' })
  }, 30_000)

  it('fails the build naming the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ wsProxy: { metrics: { path: 'metrics' } } }, `[nitro-ws-proxy] wsProxy.metrics.path must start with '/', got "metrics"`],
      [{ wsProxy: { metrics: { path: '/m?x=1' } } }, `[nitro-ws-proxy] wsProxy.metrics.path must be a plain path without spaces, '?', '#', '*', '//' or a trailing '/', got "/m?x=1"`],
      [{ wsProxy: { metrics: 'yes' } }, `[nitro-ws-proxy] wsProxy.metrics must be true, false or { path }, got "yes"`],
      [{ wsProxy: { metrics: { token: 'abc' } } }, `[nitro-ws-proxy] wsProxy.metrics.token is not an option (the token is a runtime secret: set NITRO_WS_PROXY_METRICS_TOKEN)`],
      [{ wsProxy: { accessLog: 'xml' } }, `[nitro-ws-proxy] wsProxy.accessLog must be true, false, 'text' or 'json', got "xml"`],
      [{ wsProxy: { metrics: { path: '/echo/metrics' } } }, `[nitro-ws-proxy] wsProxy.metrics.path '/echo/metrics' is served by the wsProxy route '/echo/**': choose another path`],
      [{ routeRules: { '/metrics/**': { wsProxy: 'ws://127.0.0.1:9/**' } } }, `[nitro-ws-proxy] routeRules['/metrics/**'].wsProxy: the name 'metrics' is reserved`],
      [{ routeRules: { '/access-log': { wsProxy: 'ws://127.0.0.1:9/**' } } }, `the name 'accessLog' is reserved`],
    ]
    for (const [overrides, message] of cases) {
      expect(await withNitro('observe-app', overrides, () => 'no error')).toContain(message)
    }
  }, 60_000)

  it('resolveObserveOptions', () => {
    expect(resolveObserveOptions({})).toEqual({ metricsPath: undefined, accessLog: '' })
    expect(resolveObserveOptions({ metrics: true, accessLog: 'json' })).toEqual({ metricsPath: DEFAULT_METRICS_PATH, accessLog: 'json' })
    expect(resolveObserveOptions({ metrics: {}, accessLog: false })).toEqual({ metricsPath: DEFAULT_METRICS_PATH, accessLog: '' })
    expect(resolveObserveOptions({ metrics: false, accessLog: 'text' })).toEqual({ metricsPath: undefined, accessLog: 'text' })
  })
})
