/**
 * Session helpers for the auth suite: cookies sealed by h3's own `sealSession` (the format
 * `useSession` and nuxt-auth-utils write), and a proxy mounted behind `withRouteAuth`.
 */
import type { Hooks } from 'crossws'
import type { SessionConfig } from 'h3'
import type { AuthRuntimeConfig, NormalizedAuthRule, RouteAuth } from '../../src/runtime/auth'
import { randomBytes, randomUUID } from 'node:crypto'
import { sealSession } from 'h3'
import { validateAuthRule } from '../../src/nitro/auth-rule'
import { createRouteAuth, getUpstreamAuthHeaders, withRouteAuth } from '../../src/runtime/auth'
import { createWebSocketProxy } from '../../src/index'
import { type CrosswsLine, startProxy, WsWebSocket } from '../helpers'

/** A fresh random password (43 characters), generated per run: never committed. */
export function generatePassword(): string {
  return randomBytes(32).toString('base64url')
}

export interface SealOptions {
  password: string
  /** Cookie name. @default 'h3' */
  name?: string
  /** h3 `maxAge` (seconds): sets the seal's ttl. */
  maxAge?: number
  /** `session.createdAt`. @default Date.now() */
  createdAt?: number
  /** iron seal options (e.g. `localtimeOffsetMsec` to seal "in the past"). */
  seal?: Partial<NonNullable<SessionConfig['seal']>>
}

/** Seal `data` as an h3 session with h3's `sealSession`, the way `useSession` does. */
export async function sealData(data: Record<string, unknown>, options: SealOptions): Promise<string> {
  const name = options.name ?? 'h3'
  const session = { id: randomUUID(), createdAt: options.createdAt ?? Date.now(), data }
  const event = { context: { sessions: { [name]: session } } }
  return sealSession(event as any, {
    password: options.password,
    name,
    maxAge: options.maxAge,
    seal: options.seal as SessionConfig['seal'],
  })
}

/** `name=<seal>` for a `cookie` header. */
export async function sessionCookie(data: Record<string, unknown>, options: SealOptions): Promise<string> {
  return `${options.name ?? 'h3'}=${await sealData(data, options)}`
}

export interface AuthedProxyOptions {
  line: CrosswsLine
  upstreamUrl: string
  /** The rule as written in routeRules (validated like the module does). @default { session: true } */
  rule?: unknown
  config: AuthRuntimeConfig
  route?: string
}

/**
 * The real core proxy behind `withRouteAuth`, on a real crossws adapter. `opens` counts the
 * `open` hook calls the auth layer let through.
 */
export async function startAuthedProxy(options: AuthedProxyOptions) {
  const route = options.route ?? '/live/**'
  const rule: NormalizedAuthRule = validateAuthRule(route, options.rule ?? { session: true })
  const auth: RouteAuth = createRouteAuth(route, rule, options.config)
  const proxy = createWebSocketProxy({
    target: options.upstreamUrl,
    WebSocket: WsWebSocket,
    headers: peer => getUpstreamAuthHeaders(peer),
  })
  const counts = { opens: 0 }
  const inner: Partial<Hooks> = {
    ...proxy,
    open(peer) {
      counts.opens++
      return proxy.open(peer)
    },
  }
  const hooks = withRouteAuth(inner, auth)
  const server = await startProxy(hooks, { crossws: options.line })
  return { server, proxy, auth, counts }
}
