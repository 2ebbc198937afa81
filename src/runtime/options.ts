/**
 * Options of one proxied route: the shape written in `routeRules`, checked once at build time
 * and again in the server (where runtime config and env variables may have replaced values).
 *
 * Pure: imported by the Nitro module (build time) and by the runtime handler.
 */
import type { WebSocketProxyBalance, WebSocketProxyHealthCheck, WebSocketProxyOptions } from '../core/types'
import type { AuthRuleInput } from './auth/types'
import { handshakeHeaderProblem, headerPath } from './headers'
import { parseTarget, type ParsedTarget } from './target'

/** Numeric `createWebSocketProxy` options a rule may set (milliseconds or bytes, `>= 0`). */
export const NUMBER_OPTIONS = [
  'connectTimeout',
  'maxBufferSize',
  'clientIdleTimeout',
  'highWaterMark',
  'lowWaterMark',
  'maxBufferedAmount',
  'heartbeatInterval',
  'heartbeatTimeout',
  'maxFails',
  'failTimeout',
  'maxLifetime',
] as const

/** Most entries in a rule's `target` list. */
export const MAX_TARGETS = 32

const LIMIT_KEYS = ['connections', 'perIp', 'perUser', 'messagesPerSecond', 'bytesPerSecond'] as const

const BALANCES: readonly WebSocketProxyBalance[] = ['least-connections', 'round-robin', 'random', 'hash']

/** Pool and lifetime options passed to `createWebSocketProxy` as they are, once checked. */
export const POOL_OPTIONS = ['balance', 'hashKey', 'healthCheck', 'lifetimeClose', 'limits'] as const

/** Boolean options a rule may set. */
export const BOOLEAN_OPTIONS = ['forwardProtocol', 'upstreamFirst', 'passthrough', 'xForwarded'] as const

/** Every key of a rule's runtime entry (`runtimeConfig.wsProxy.<name>`), all overridable by env. */
export const RUNTIME_OPTION_KEYS = ['target', 'headers', ...BOOLEAN_OPTIONS, ...NUMBER_OPTIONS, ...POOL_OPTIONS] as const

/** The string forms of `hashKey` a rule may use (functions cannot be serialised into a rule). */
export type WsProxyRuleHashKey = 'user' | 'ip' | `header:${string}` | `query:${string}` | `cookie:${string}`

type NumberOption = typeof NUMBER_OPTIONS[number]

/**
 * A proxied route's options: the value of `routeRules[route].wsProxy` when it is an object.
 * Unset numeric and boolean options take `createWebSocketProxy`'s defaults.
 */
export interface WsProxyRuleOptions extends Partial<Pick<WebSocketProxyOptions, NumberOption | 'forwardProtocol' | 'upstreamFirst' | 'passthrough' | 'balance' | 'healthCheck' | 'lifetimeClose' | 'limits'>> {
  /**
   * Upstream URL: `ws://`, `wss://` or `ws+unix:`. Ending it with `/**` appends the client path
   * below the route (`'/live/**'` + `ws://chat:8080/rooms/**`: `/live/a?x=1` dials
   * `ws://chat:8080/rooms/a?x=1`); without it every client of the route dials this URL (the client
   * query is still appended). A list (up to 32) is a pool: each connection dials one entry, picked
   * by `balance`, and fails over to the next when a dial fails; each entry is mapped and checked
   * on its own. Override it per deployment with the rule's env variable (a URL or a JSON array).
   * @example 'ws://127.0.0.1:8080/**'
   * @example ['ws://10.0.0.1:4000/**', 'ws://10.0.0.2:4000/**']
   */
  target: string | string[]
  /**
   * With `balance: 'hash'`: `'user'` (the session user of an `auth` route), `'ip'`,
   * `'header:<name>'`, `'query:<name>'` or `'cookie:<name>'`.
   */
  hashKey?: WsProxyRuleHashKey
  /**
   * Key of this rule in `runtimeConfig.wsProxy` and so in its env variables
   * (`NITRO_WS_PROXY_<NAME>_TARGET`). Letters and digits, starting with a letter.
   * @default the route's static segments in camelCase: `'/api/live-chat/**'` → `apiLiveChat`
   */
  name?: string
  /**
   * Send `x-forwarded-for`, `x-forwarded-proto` and `x-forwarded-host` to the upstream, computed
   * by the proxy (copies sent by the client are never forwarded). Needs the `ws` client (Node
   * presets): the WHATWG `WebSocket` cannot send headers.
   * @default true
   */
  xForwarded?: boolean
  /**
   * Extra headers for the upstream handshake (`ws` client only). Route rules are stored in plain
   * text in the server bundle: pass secrets through the rule's `..._HEADERS` env variable instead.
   * `host`, `connection`, `upgrade`, `sec-websocket-*` and hop-by-hop or framing headers
   * (`content-length`, `transfer-encoding`, `te`, `trailer`, `keep-alive`, `proxy-*`) are refused.
   * @example { 'x-api-version': '2' }
   */
  headers?: Record<string, string>
  /**
   * Session authentication of the upgrade (README: Authentication): `{ session: true }` (or
   * `true`) requires a sealed session cookie with a user. Serialisable, never secret: the
   * password comes from runtime config. `false` turns it off for this rule.
   * @example { session: true, requireUser: { role: ['admin', 'staff'] } }
   */
  auth?: boolean | AuthRuleInput
}

/** What `routeRules[route].wsProxy` (or `['ws-proxy']`) accepts: a target URL, options, or `false`. */
export type WsProxyRule = string | WsProxyRuleOptions | false

/** A rule entry after checking: everything the handler needs except the WebSocket constructor. */
export interface CheckedRuleOptions {
  /** The target, or each entry of a pool, parsed. */
  targets: ParsedTarget[]
  xForwarded: boolean
  headers: Record<string, string>
  /** Options handed to `createWebSocketProxy` as they are (unset ones are absent). */
  proxy: Partial<Pick<WebSocketProxyOptions, NumberOption | 'forwardProtocol' | 'upstreamFirst' | 'passthrough' | 'balance' | 'hashKey' | 'healthCheck' | 'lifetimeClose' | 'limits'>>
}

/**
 * Check a rule's options (build time: from `routeRules`; runtime: from `runtimeConfig.wsProxy`).
 * `null`, `undefined` and `''` mean "unset" (runtime config placeholders). Throws a `TypeError`
 * whose message starts with `field(key)`, e.g. `routeRules['/live/**'].wsProxy.target`; a key
 * may name an entry below an option (`headers.host`). Header names follow the one handshake
 * header policy (`handshakeHeaderProblem`).
 */
export function checkRuleOptions(
  entry: Record<string, unknown>,
  field: (key: string) => string,
  allowedKeys: readonly string[] = RUNTIME_OPTION_KEYS,
): CheckedRuleOptions {
  for (const key of Object.keys(entry)) {
    if (!allowedKeys.includes(key)) {
      fail(`${field(key)} is not an option; known options: ${allowedKeys.join(', ')}`)
    }
  }
  const targets = checkTargets(entry.target, field)

  const proxy: CheckedRuleOptions['proxy'] = {}
  for (const key of NUMBER_OPTIONS) {
    const value = entry[key]
    if (isUnset(value)) continue
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      fail(`${field(key)} must be a non-negative number, got ${JSON.stringify(value)}`)
    }
    proxy[key] = value
  }
  let xForwarded = true
  for (const key of BOOLEAN_OPTIONS) {
    const value = entry[key]
    if (isUnset(value)) continue
    if (typeof value !== 'boolean') fail(`${field(key)} must be true or false, got ${JSON.stringify(value)}`)
    if (key === 'xForwarded') xForwarded = value
    else proxy[key] = value
  }

  const headers: Record<string, string> = {}
  if (!isUnset(entry.headers)) {
    if (typeof entry.headers !== 'object' || Array.isArray(entry.headers)) {
      fail(`${field('headers')} must be an object of header names to string values`)
    }
    for (const [name, value] of Object.entries(entry.headers as Record<string, unknown>)) {
      const problem = handshakeHeaderProblem(name)
      if (problem) fail(`${field(headerPath('headers', name))} is not allowed: ${problem}`)
      if (isUnset(value)) continue
      if (typeof value !== 'string' && typeof value !== 'number') fail(`${field(headerPath('headers', name))} must be a string`)
      headers[name.toLowerCase()] = String(value)
    }
  }
  checkPoolOptions(entry, field, proxy)
  return { targets, xForwarded, headers, proxy }
}

/** `target`: one URL or a list; an env value may also be a JSON array string. */
function checkTargets(value: unknown, field: (key: string) => string): ParsedTarget[] {
  let list = value
  if (typeof list === 'string' && list.trim().startsWith('[')) {
    try { list = JSON.parse(list) }
    catch { fail(`${field('target')} looks like a JSON array but does not parse: ${JSON.stringify(list)}`) }
  }
  if (!Array.isArray(list)) {
    const target = parseTarget(list)
    if (typeof target === 'string') fail(`${field('target')} ${target}`)
    return [target]
  }
  if (list.length === 0) fail(`${field('target')} must list at least one upstream URL`)
  if (list.length > MAX_TARGETS) fail(`${field('target')} lists ${list.length} upstreams; at most ${MAX_TARGETS} are supported`)
  return list.map((item, i) => {
    const target = parseTarget(item)
    if (typeof target === 'string') fail(`${field(`target[${i}]`)} ${target}`)
    return target
  })
}

function checkPoolOptions(entry: Record<string, unknown>, field: (key: string) => string, proxy: CheckedRuleOptions['proxy']): void {
  const balance = entry.balance
  if (!isUnset(balance)) {
    if (!BALANCES.includes(balance as WebSocketProxyBalance)) {
      fail(`${field('balance')} must be one of ${BALANCES.map(b => `'${b}'`).join(', ')}, got ${JSON.stringify(balance)}`)
    }
    proxy.balance = balance as WebSocketProxyBalance
  }
  const hashKey = entry.hashKey
  if (!isUnset(hashKey)) {
    if (typeof hashKey !== 'string' || !(hashKey === 'user' || hashKey === 'ip' || /^(?:header|query|cookie):[^\s]+$/.test(hashKey))) {
      fail(`${field('hashKey')} must be 'user', 'ip', 'header:<name>', 'query:<name>' or 'cookie:<name>', got ${JSON.stringify(hashKey)}`)
    }
    proxy.hashKey = hashKey as WsProxyRuleHashKey
  }
  if (proxy.balance === 'hash' && proxy.hashKey === undefined) fail(`${field('hashKey')} is required with balance 'hash'`)
  let healthCheck = entry.healthCheck
  if (typeof healthCheck === 'string' && healthCheck.trim().startsWith('{')) {
    try { healthCheck = JSON.parse(healthCheck) }
    catch { fail(`${field('healthCheck')} looks like a JSON object but does not parse`) }
  }
  if (!isUnset(healthCheck) && healthCheck !== false) {
    if (typeof healthCheck !== 'object' || Array.isArray(healthCheck)) fail(`${field('healthCheck')} must be an object { interval, path? }`)
    const check = healthCheck as Record<string, unknown>
    for (const key of Object.keys(check)) {
      if (!['interval', 'path', 'timeout'].includes(key)) fail(`${field(`healthCheck.${key}`)} is not an option; known options: interval, path, timeout`)
    }
    if (typeof check.interval !== 'number' || !(check.interval >= 100)) fail(`${field('healthCheck.interval')} must be a number of milliseconds >= 100, got ${JSON.stringify(check.interval)}`)
    if (!isUnset(check.path) && (typeof check.path !== 'string' || !check.path.startsWith('/'))) fail(`${field('healthCheck.path')} must be a path starting with '/', got ${JSON.stringify(check.path)}`)
    if (!isUnset(check.timeout) && (typeof check.timeout !== 'number' || !(check.timeout > 0))) fail(`${field('healthCheck.timeout')} must be a positive number of milliseconds, got ${JSON.stringify(check.timeout)}`)
    proxy.healthCheck = {
      interval: check.interval,
      ...(isUnset(check.path) ? {} : { path: check.path as string }),
      ...(isUnset(check.timeout) ? {} : { timeout: check.timeout as number }),
    } satisfies WebSocketProxyHealthCheck
  }
  let limits = entry.limits
  if (typeof limits === 'string' && limits.trim().startsWith('{')) {
    try { limits = JSON.parse(limits) }
    catch { fail(`${field('limits')} looks like a JSON object but does not parse`) }
  }
  if (!isUnset(limits) && limits !== false) {
    if (typeof limits !== 'object' || Array.isArray(limits)) fail(`${field('limits')} must be an object { connections?, perIp?, perUser?, messagesPerSecond?, bytesPerSecond? }`)
    const checked: Record<string, number> = {}
    for (const [key, value] of Object.entries(limits as Record<string, unknown>)) {
      if (!LIMIT_KEYS.includes(key as typeof LIMIT_KEYS[number])) fail(`${field(`limits.${key}`)} is not a limit; known limits: ${LIMIT_KEYS.join(', ')}`)
      if (isUnset(value)) continue
      const integer = key === 'connections' || key === 'perIp' || key === 'perUser'
      if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
        fail(`${field(`limits.${key}`)} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(value)}`)
      }
      checked[key] = value
    }
    proxy.limits = checked
  }
  const lifetimeClose = entry.lifetimeClose
  if (!isUnset(lifetimeClose)) {
    const ok = Array.isArray(lifetimeClose) && lifetimeClose.length >= 1 && lifetimeClose.length <= 2
      && typeof lifetimeClose[0] === 'number' && isSendableCode(lifetimeClose[0])
      && (lifetimeClose[1] === undefined || typeof lifetimeClose[1] === 'string')
    if (!ok) fail(`${field('lifetimeClose')} must be [code, reason?] with code 1000, 1001, 1008, 1011 or 3000-4999, got ${JSON.stringify(lifetimeClose)}`)
    proxy.lifetimeClose = lifetimeClose as [number, string?]
  }
}

/** Codes a proxy may send in a close frame (RFC 6455 §7.4). */
function isSendableCode(code: number): boolean {
  return code === 1000 || code === 1001 || code === 1008 || code === 1011 || (code >= 3000 && code <= 4999)
}

/** Runtime config placeholders (Nitro turns `null` into `''`) and absent keys. */
export function isUnset(value: unknown): value is null | undefined | '' {
  return value === undefined || value === null || value === ''
}

function fail(message: string): never {
  throw new TypeError(`[nitro-ws-proxy] ${message}`)
}
