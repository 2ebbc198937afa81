/**
 * Build time: find every route rule with `wsProxy` (or `'ws-proxy'`), check it, and normalise it
 * into what the generated handler and the runtime config need. Errors fail the build with the
 * route and the field: `[nitro-ws-proxy] routeRules['/live/**'].wsProxy.target must be ...`.
 */
import { checkRuleOptions, RUNTIME_OPTION_KEYS, type WsProxyRuleOptions } from '../runtime/options'
import { toEnvSuffix } from '../runtime/env'
import { type NormalizedAuthRule, validateAuthRule } from './auth-rule'
import { authMethod } from '../runtime/auth/types'

/** One proxied route, ready for code generation. */
export interface NormalizedWsProxyRule {
  /** Route key as written, e.g. `'/live/**'`. */
  route: string
  /** Routes the handler is registered on: `['/live/**', '/live']` for a wildcard rule. */
  handlerRoutes: string[]
  /** Key in `runtimeConfig.wsProxy`. */
  name: string
  /** Env variable prefix of this rule in a Nitro server, e.g. `NITRO_WS_PROXY_LIVE_`. */
  envPrefix: string
  /** The runtime config entry: every overridable option, unset ones as `''` (Nitro's own placeholder). */
  runtime: Record<string, unknown>
  /** The rule's normalised `auth`, when it turns a method on (session, jwt or hook; applied by the auth runtime). */
  auth?: NormalizedAuthRule
}

/** Option keys accepted in a rule object. */
export const RULE_KEYS = ['name', 'auth', ...RUNTIME_OPTION_KEYS] as const

const NAME_RE = /^[a-z][a-z\d]*$/i
/** Keys of `runtimeConfig.wsProxy` that are not rules (auth, shutdown, metrics and access log settings). */
const RESERVED_NAMES = new Set(['session', 'jwt', 'trustProxy', 'hookTimeout', 'defaults', 'routes', 'shutdown', 'metrics', 'accessLog'])
const ROUTE_RE = /^\/[^*:?#]*?(?:\/\*\*)?$/

/**
 * Read the `wsProxy` / `'ws-proxy'` rules of `routeRules`, apply `defaults` to each, validate
 * and normalise them. Throws a `TypeError` naming the route and field for any invalid rule.
 */
export function normalizeWsProxyRules(
  routeRules: Record<string, Record<string, unknown> | undefined> | undefined,
  defaults: Partial<WsProxyRuleOptions> = {},
): NormalizedWsProxyRule[] {
  const rules: NormalizedWsProxyRule[] = []
  const names = new Map<string, string>()
  for (const [route, config] of Object.entries(routeRules || {})) {
    if (!config || typeof config !== 'object') continue
    const hasCamel = config.wsProxy !== undefined
    const hasKebab = config['ws-proxy'] !== undefined
    if (!hasCamel && !hasKebab) continue
    const key = hasCamel ? 'wsProxy' : 'ws-proxy'
    const at = `routeRules[${quote(route)}]${key === 'wsProxy' ? `.${key}` : `['${key}']`}`
    if (hasCamel && hasKebab) {
      fail(`routeRules[${quote(route)}] sets both wsProxy and 'ws-proxy': keep one`)
    }
    const value = config[key]
    if (value === false || value === null) continue
    if (!ROUTE_RE.test(route) || route.includes('//')) {
      fail(`${at}: the route must be an exact path ('/ws') or a prefix ending with /** ('/live/**'); got ${quote(route)}`)
    }

    let options: Record<string, unknown>
    if (typeof value === 'string') options = { target: value }
    else if (typeof value === 'object' && !Array.isArray(value)) options = { ...value as Record<string, unknown> }
    else fail(`${at} must be a target URL string, an options object or false`)
    for (const [k, v] of Object.entries(defaults)) {
      if (options[k] === undefined && k !== 'name' && k !== 'target') options[k] = v
    }

    const field = (k: string) => `${at}.${k}`
    const { name: rawName, auth, ...rest } = options
    checkRuleOptions(rest, field, RULE_KEYS)

    let name: string
    if (rawName === undefined) {
      name = nameFromRoute(route)
    }
    else {
      if (typeof rawName !== 'string' || !NAME_RE.test(rawName)) {
        fail(`${field('name')} must be letters and digits starting with a letter (e.g. 'liveChat'), got ${JSON.stringify(rawName)}`)
      }
      name = rawName
    }
    if (RESERVED_NAMES.has(name)) {
      fail(`${at}: the name '${name}' is reserved (runtimeConfig.wsProxy.${name} holds other settings); set another \`name\` on this rule`)
    }
    const envName = toEnvSuffix(name)
    const other = names.get(envName)
    if (other) {
      fail(`${at}: routes ${quote(other)} and ${quote(route)} both get the name '${name}' (env NITRO_WS_PROXY_${envName}_*); set a distinct \`name\` on one of them`)
    }
    names.set(envName, route)

    // Auth (session, jwt or hook): validated and normalised by the auth rule validator.
    const authRule = auth === undefined ? undefined : validateAuthRule(route, auth)

    const runtime: Record<string, unknown> = {}
    for (const k of RUNTIME_OPTION_KEYS) {
      runtime[k] = rest[k] === undefined ? (k === 'headers' ? {} : '') : rest[k]
    }

    const handlerRoutes = [route]
    if (route.endsWith('/**')) {
      const bare = route.slice(0, -3)
      if (bare) handlerRoutes.push(bare)
    }
    rules.push({
      route,
      handlerRoutes,
      name,
      envPrefix: `NITRO_WS_PROXY_${envName}_`,
      runtime,
      auth: authMethod(authRule) ? authRule : undefined,
    })
  }
  return rules
}

/** `'/api/live-chat/**'` → `apiLiveChat`; `'/'` and `'/**'` → `root`. */
export function nameFromRoute(route: string): string {
  const words = route.replace(/\/\*\*$/, '').split(/[^a-z\d]+/i).filter(Boolean).map(w => w.toLowerCase())
  if (!words.length) return 'root'
  const name = words.map((w, i) => (i ? w[0]!.toUpperCase() + w.slice(1) : w)).join('')
  return /^[a-z]/.test(name) ? name : `route${name[0]!.toUpperCase()}${name.slice(1)}`
}

function quote(route: string): string {
  return `'${route.replace(/'/g, '\\\'')}'`
}

function fail(message: string): never {
  throw new TypeError(`[nitro-ws-proxy] ${message}`)
}
