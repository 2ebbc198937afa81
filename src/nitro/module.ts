import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { defu } from 'defu'
import type { Nitro, NitroModule } from 'nitropack/types'
import { normalizeWsProxyRules, type NormalizedWsProxyRule } from './rules'
import type { WsProxyModuleOptions } from './types'

/** Prefix of the virtual handler modules: `#nitro-ws-proxy/route-0`, `-1`, ... */
export const VIRTUAL_PREFIX = '#nitro-ws-proxy/route-'

/** The virtual server plugin that checks the session password at start (only with session auth). */
export const SESSION_CHECK_PLUGIN = '#nitro-ws-proxy/session-password-check'

/**
 * The Nitro module: one WebSocket handler per `routeRules` entry with `wsProxy`.
 *
 * @example
 * // nitro.config.ts
 * import wsProxy from 'nitro-ws-proxy/nitro'
 * export default defineNitroConfig({
 *   modules: [wsProxy],
 *   routeRules: { '/live/**': { wsProxy: 'ws://127.0.0.1:8080/**' } },
 * })
 */
const wsProxyModule: NitroModule = {
  name: 'nitro-ws-proxy',
  setup(nitro) {
    setupWsProxy(nitro, nitro.options.wsProxy)
  },
}

export default wsProxyModule

/** Register the handlers, runtime config and plugin for `nitro`'s `wsProxy` route rules. */
export function setupWsProxy(nitro: Nitro, options: WsProxyModuleOptions = {}): NormalizedWsProxyRule[] {
  const rules = applyRules(nitro, options)
  // `nitropack dev` hot-reloads routeRules and runtimeConfig edits without running modules
  // again (and replaces runtimeConfig): register the rules again before it rebuilds.
  nitro.hooks.hook('rollup:reload', () => {
    applyRules(nitro, options)
  })
  if (rules.length) {
    const envPrefix: string = (nitro.options.runtimeConfig as Record<string, any>).nitro?.envPrefix || 'NITRO_'
    nitro.logger?.info?.(
      `[nitro-ws-proxy] ${rules.map(r => `${r.route} (${envPrefix}WS_PROXY_${r.envPrefix.slice('NITRO_WS_PROXY_'.length)}*)`).join(', ')}`,
    )
  }
  return rules
}

/** The runtime config entries (JSON) a pass wrote, per Nitro instance (see `applyRules`). */
const writtenEntries = new WeakMap<Nitro, Record<string, string>>()

/** The handler module code of each virtual id, per Nitro instance (see `applyRules`). */
const generatedCode = new WeakMap<Nitro, Map<string, string>>()

function applyRules(nitro: Nitro, options: WsProxyModuleOptions): NormalizedWsProxyRule[] {
  const rules = normalizeWsProxyRules(
    nitro.options.routeRules as Record<string, Record<string, unknown>>,
    options.defaults,
  )
  // Forget what a previous pass registered.
  nitro.options.handlers = nitro.options.handlers.filter(h => !String(h.handler).startsWith(VIRTUAL_PREFIX))
  for (const id of Object.keys(nitro.options.virtual)) {
    if (id.startsWith(VIRTUAL_PREFIX)) delete nitro.options.virtual[id]
  }
  nitro.options.plugins = nitro.options.plugins.filter(p => p !== SESSION_CHECK_PLUGIN)
  delete nitro.options.virtual[SESSION_CHECK_PLUGIN]
  if (!rules.length) return rules

  const distDir = findDistDir()
  const runtimeDir = `${distDir}runtime/`
  const coreEntry = `${distDir}index.mjs`
  const client = options.client ?? 'auto'
  const useWs = client === 'ws' || (client === 'auto' && nitro.options.node !== false)
  const runtimeConfig = nitro.options.runtimeConfig as Record<string, any>
  const envPrefix: string = runtimeConfig.nitro?.envPrefix || 'NITRO_'
  const framework = nitro.options.framework?.name === 'nuxt' ? 'nuxt' : 'nitro'

  nitro.options.experimental.websocket = true
  // Bundle our runtime and core into the server, like Nitro's own runtime.
  const externals = (nitro.options.externals ||= {} as NonNullable<Nitro['options']['externals']>)
  externals.inline ||= []
  if (!externals.inline.includes(distDir)) externals.inline.push(distDir)

  // Values written in the app's own runtimeConfig.wsProxy win over the route rule. Entries a
  // previous pass wrote (unchanged since) are ours, not the app's: drop them so edits apply.
  const current: Record<string, unknown> = { ...runtimeConfig.wsProxy }
  const previous = writtenEntries.get(nitro) ?? {}
  for (const [name, entry] of Object.entries(previous)) {
    if (JSON.stringify(current[name]) === entry) delete current[name]
  }
  const entries = Object.fromEntries(rules.map(rule => [rule.name, rule.runtime]))
  runtimeConfig.wsProxy = defu(current, entries)
  writtenEntries.set(nitro, Object.fromEntries(rules.map(rule => [rule.name, JSON.stringify(runtimeConfig.wsProxy[rule.name])])))
  // Only `auth.session === true` turns auth on (`auth: false` / `{ session: false }` normalise
  // to no `auth`, see rules.ts).
  const protectedRoutes = rules.filter(rule => rule.auth?.session === true).map(rule => rule.route)
  if (protectedRoutes.length) {
    // Session auth settings (read by the auth runtime): the keys must exist for Nitro to apply
    // their env overrides (NITRO_WS_PROXY_SESSION_PASSWORD, ..._TRUST_PROXY, ...). '' is unset.
    // Private (never under `public`); the password itself is only ever set at runtime.
    runtimeConfig.wsProxy = defu(runtimeConfig.wsProxy, {
      session: { password: '', name: '', maxAge: '' },
      trustProxy: '',
      hookTimeout: '',
    })
  }

  const codes = generatedCode.get(nitro) ?? new Map<string, string>()
  generatedCode.set(nitro, codes)
  codes.clear()
  rules.forEach((rule, index) => {
    const id = `${VIRTUAL_PREFIX}${index}`
    codes.set(id, handlerCode(rule, {
      coreEntry,
      runtimeDir,
      useWs,
      envPrefix: rule.envPrefix.replace(/^NITRO_/, envPrefix),
      framework,
    }))
    // A getter: Nitro's dev watcher keeps the virtual modules it started with across config
    // hot reloads, so an edited rule must be read when the module is loaded again.
    nitro.options.virtual[id] = () => codes.get(id) ?? 'export default undefined'
    for (const route of rule.handlerRoutes) {
      nitro.options.handlers.push({ route, handler: id })
    }
  })
  const plugin = `${runtimeDir}plugin.mjs`
  if (!nitro.options.plugins.includes(plugin)) nitro.options.plugins.push(plugin)
  if (protectedRoutes.length) {
    // Fails the server start (not the build: the password is a runtime secret) when a
    // session-protected route has no usable password.
    nitro.options.virtual[SESSION_CHECK_PLUGIN] = sessionCheckCode(protectedRoutes, { runtimeDir, framework })
    nitro.options.plugins.push(SESSION_CHECK_PLUGIN)
  }
  return rules
}

/**
 * The package's `dist/` (with a trailing slash): this code runs from `dist/nitro.mjs`,
 * `dist/nuxt.mjs` or a chunk the bundler shared between them (`dist/shared/*.mjs`).
 */
function findDistDir(): string {
  for (const candidate of ['./', '../']) {
    const dir = fileURLToPath(new URL(candidate, import.meta.url))
    if (existsSync(`${dir}runtime/handler.mjs`)) return dir
  }
  throw new Error(`[nitro-ws-proxy] cannot find the runtime files next to ${import.meta.url}: run the package's build (\`npm run build\`) first`)
}

/** The generated server plugin checking the session password when the server starts. */
export function sessionCheckCode(routes: string[], ctx: { runtimeDir: string, framework: 'nitro' | 'nuxt' }): string {
  return [
    `import { useRuntimeConfig } from 'nitropack/runtime'`,
    `import { defineSessionPasswordCheck } from ${JSON.stringify(`${ctx.runtimeDir}auth/startup.mjs`)}`,
    `export default defineSessionPasswordCheck({`,
    `  routes: ${JSON.stringify(routes)},`,
    `  framework: ${JSON.stringify(ctx.framework)},`,
    `  useRuntimeConfig,`,
    `})`,
  ].join('\n')
}

/** The generated module of one rule: composition of core, runtime handler and client. */
export function handlerCode(
  rule: NormalizedWsProxyRule,
  ctx: { coreEntry: string, runtimeDir: string, useWs: boolean, envPrefix: string, framework: 'nitro' | 'nuxt' },
): string {
  const imports = [
    `import { useNitroApp, useRuntimeConfig } from 'nitropack/runtime'`,
    `import { createWebSocketProxy } from ${JSON.stringify(ctx.coreEntry)}`,
    `import { defineWsProxyHandler } from ${JSON.stringify(`${ctx.runtimeDir}handler.mjs`)}`,
  ]
  if (ctx.useWs) imports.push(`import { WebSocket } from ${JSON.stringify(`${ctx.runtimeDir}ws.mjs`)}`)
  const body = [`const runtimeConfig = useRuntimeConfig()`]
  // Session auth (issue 5): the route's check, with the session settings of the runtime config.
  if (rule.auth?.session === true) {
    imports.push(`import { createRouteAuth, resolveSessionConfig } from ${JSON.stringify(`${ctx.runtimeDir}auth/index.mjs`)}`)
    body.push(
      `const { session, passwordEnv } = resolveSessionConfig(runtimeConfig, ${JSON.stringify(ctx.framework)})`,
      `const auth = createRouteAuth(${JSON.stringify(rule.route)}, ${JSON.stringify(rule.auth)}, {`,
      `  session,`,
      `  passwordEnv,`,
      `  trustProxy: runtimeConfig.wsProxy?.trustProxy === true,`,
      `  hookTimeout: [undefined, null, ''].includes(runtimeConfig.wsProxy?.hookTimeout) ? undefined : Number(runtimeConfig.wsProxy.hookTimeout),`,
      `  callHook: (name, ctx) => useNitroApp().hooks.callHook(name, ctx),`,
      `})`,
    )
  }
  body.push(
    `export default defineWsProxyHandler({`,
    `  route: ${JSON.stringify(rule.route)},`,
    `  name: ${JSON.stringify(rule.name)},`,
    `  envPrefix: ${JSON.stringify(ctx.envPrefix)},`,
    `  createWebSocketProxy,`,
    `  WebSocket: ${ctx.useWs ? 'WebSocket' : 'undefined'},`,
    `  runtimeConfig,`,
    `  auth: ${rule.auth?.session === true ? 'auth' : 'undefined'},`,
    `})`,
  )
  const lines = [...imports, ...body]
  return lines.join('\n')
}
