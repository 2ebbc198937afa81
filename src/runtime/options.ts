/**
 * Options of one proxied route: the shape written in `routeRules`, checked once at build time
 * and again in the server (where runtime config and env variables may have replaced values).
 *
 * Pure: imported by the Nitro module (build time) and by the runtime handler.
 */
import type { WebSocketProxyOptions } from '../core/types'
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
] as const

/** Boolean options a rule may set. */
export const BOOLEAN_OPTIONS = ['forwardProtocol', 'upstreamFirst', 'passthrough', 'xForwarded'] as const

/** Every key of a rule's runtime entry (`runtimeConfig.wsProxy.<name>`), all overridable by env. */
export const RUNTIME_OPTION_KEYS = ['target', 'headers', ...BOOLEAN_OPTIONS, ...NUMBER_OPTIONS] as const

type NumberOption = typeof NUMBER_OPTIONS[number]

/**
 * A proxied route's options: the value of `routeRules[route].wsProxy` when it is an object.
 * Unset numeric and boolean options take `createWebSocketProxy`'s defaults.
 */
export interface WsProxyRuleOptions extends Partial<Pick<WebSocketProxyOptions, NumberOption | 'forwardProtocol' | 'upstreamFirst' | 'passthrough'>> {
  /**
   * Upstream URL: `ws://`, `wss://` or `ws+unix:`. Ending it with `/**` appends the client path
   * below the route (`'/live/**'` + `ws://chat:8080/rooms/**`: `/live/a?x=1` dials
   * `ws://chat:8080/rooms/a?x=1`); without it every client of the route dials this URL (the client
   * query is still appended). Override it per deployment with the rule's env variable.
   * @example 'ws://127.0.0.1:8080/**'
   */
  target: string
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
  target: ParsedTarget
  xForwarded: boolean
  headers: Record<string, string>
  /** Options handed to `createWebSocketProxy` as they are (unset ones are absent). */
  proxy: Partial<Pick<WebSocketProxyOptions, NumberOption | 'forwardProtocol' | 'upstreamFirst' | 'passthrough'>>
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
  const target = parseTarget(entry.target)
  if (typeof target === 'string') fail(`${field('target')} ${target}`)

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
  return { target, xForwarded, headers, proxy }
}

/** Runtime config placeholders (Nitro turns `null` into `''`) and absent keys. */
export function isUnset(value: unknown): value is null | undefined | '' {
  return value === undefined || value === null || value === ''
}

function fail(message: string): never {
  throw new TypeError(`[nitro-ws-proxy] ${message}`)
}
