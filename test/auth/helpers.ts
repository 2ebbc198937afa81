/**
 * Session helpers for the auth suite: cookies sealed by h3's own `sealSession` (the format
 * `useSession` and nuxt-auth-utils write), and a route served by the shipping handler
 * (`defineWsProxyHandler` with `createRouteAuth`), mounted the way Nitro mounts it.
 */
import type { SessionConfig } from 'h3'
import type { AuthRuntimeConfig, RouteAuth } from '../../src/runtime/auth'
import { randomBytes, randomUUID } from 'node:crypto'
import { createApp, createRouter, sealSession } from 'h3'
import { createWebSocketProxy } from '../../src/index'
import { normalizeWsProxyRules } from '../../src/nitro/rules'
import { createRouteAuth } from '../../src/runtime/auth'
import { defineWsProxyHandler } from '../../src/runtime/handler'
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
  /** The rule's `auth` as written in routeRules (normalised like the module does). @default { session: true } */
  rule?: unknown
  config: AuthRuntimeConfig
  route?: string
  /** Other rule options (e.g. `target` as a pool list, `forwardProtocol`). */
  options?: Record<string, unknown>
}

/**
 * One `routeRules` entry served as a Nitro server serves it: the rule normalised by the module's
 * `normalizeWsProxyRules`, the generated handler's call of `defineWsProxyHandler` (with
 * `createRouteAuth`, the real core and `ws`), registered on an h3 router for each handler route,
 * and the real crossws node adapter fed the h3 app's `websocket.resolve`, as Nitro's node-server
 * does. `opens` counts the connections the adapter opened (a global `open` hook).
 */
export async function startAuthedProxy(options: AuthedProxyOptions) {
  const route = options.route ?? '/live/**'
  const [rule] = normalizeWsProxyRules({
    [route]: { wsProxy: { target: `${options.upstreamUrl}/**`, ...options.options, auth: options.rule ?? { session: true } } },
  })
  // What the generated module passes: `auth` only when the rule turns a method on.
  const auth: RouteAuth | undefined = rule!.auth
    ? createRouteAuth(rule!.route, rule!.auth, options.config)
    : undefined
  const handler = defineWsProxyHandler({
    route: rule!.route,
    name: rule!.name,
    envPrefix: rule!.envPrefix,
    createWebSocketProxy,
    WebSocket: WsWebSocket,
    // Runtime config holds what the module wrote, after a JSON round trip like Nitro's.
    runtimeConfig: JSON.parse(JSON.stringify({ app: { baseURL: '/' }, wsProxy: { [rule!.name]: rule!.runtime } })),
    dev: false,
    auth,
  })
  const app = createApp()
  const router = createRouter()
  for (const path of rule!.handlerRoutes) router.use(path, handler)
  app.use('/', router.handler)
  const counts = { opens: 0 }
  const server = await startProxy({ open: () => { counts.opens++ } }, { crossws: options.line, resolve: app.websocket.resolve! })
  return { server, auth, counts }
}
