/**
 * The server side of one `routeRules` WebSocket proxy: an h3 WebSocket handler whose hooks come
 * from `createWebSocketProxy`. The Nitro module generates one small module per rule that calls
 * {@link defineWsProxyHandler}; nothing here reads Nitro internals directly.
 */
import { defineWebSocketHandler } from '#nitro-ws-proxy/h3'
import type {
  ProxyPeer,
  WebSocketConstructor,
  WebSocketProxy,
  WebSocketProxyOptions,
} from '../core/types'
import { toEnvSuffix } from './env'
import { clearExpiry, scheduleExpiry } from './auth/expiry'
import { withoutQueryParams } from './auth/query'
import { rejectUpgrade as reject } from '../core/reject'
import { forwardedHeaders } from './forwarded'
import { checkRuleOptions, type CheckedRuleOptions } from './options'
import { mapTarget, pathBelow, rawRequestUrl, splitRequestUrl } from './target'
import { countRouteRefusal, createRouteObserver, type ObserverSinks } from './observe'

/** What `createRouteAuth` (auth runtime) returns for a route. */
export interface RouteAuth {
  /** A `Response` rejects the upgrade; otherwise the upgrade proceeds. */
  check: (request: Request) => Promise<Response | RouteAuthGrant>
  /** Query parameters carrying tokens: removed from the query before the upstream URL is mapped. */
  queryParams?: readonly string[]
  /** Rewrites the subprotocol offer (drops token entries) before it is forwarded and answered. */
  protocolOffer?: (offer: string[]) => string[]
}

/** An accepted upgrade: identity headers for the upstream and when the session or token ends. */
export interface RouteAuthGrant {
  /** Headers added to the upstream handshake (identity of the user). */
  headers?: Record<string, string>
  /** Epoch milliseconds at which the connection is closed with 1008 (session or token expiry). */
  expiresAt?: number
  /** Reason of that close. @default 'Session expired' */
  expiryReason?: string
  /** The authenticated user (kept in the connection's context: `hashKey: 'user'`, `useWsProxy().close`). */
  user?: unknown
}

/** Input of {@link defineWsProxyHandler}; written by the Nitro module's generated code. */
export interface WsProxyHandlerInput {
  /** The route key, e.g. `'/live/**'` (without the app's `baseURL`). */
  route: string
  /** The rule's key in `runtimeConfig.wsProxy`. */
  name: string
  /** Env variable prefix documented for this rule, for error messages (`NITRO_WS_PROXY_LIVE_`). */
  envPrefix: string
  /** The core factory (injected so the runtime files need no path to the package entry). */
  createWebSocketProxy: (options: WebSocketProxyOptions) => WebSocketProxy
  /** Upstream client: `ws`'s `WebSocket` on Node presets, else `undefined` (global `WebSocket`). */
  WebSocket?: WebSocketConstructor
  /** The server runs as Nitro's dev worker behind the dev server (see `forwardedHeaders`). */
  dev?: boolean
  /** The server's runtime config (`useRuntimeConfig()`), env overrides applied. */
  runtimeConfig: RuntimeConfigLike
  /**
   * Auth of the rule (`createRouteAuth(...)` of the auth runtime), when it has `auth`. Its
   * `check` runs first on every upgrade; a `Response` rejects before anything is dialled.
   */
  auth?: RouteAuth
  /** Where connection events go: Nitro's `ws-proxy:open`/`:close` hooks, the access log. */
  observe?: ObserverSinks
}

/** The parts of Nitro's runtime config read here. */
export interface RuntimeConfigLike {
  app?: { baseURL?: string }
  wsProxy?: Record<string, Record<string, unknown> | undefined>
}

/** Per-connection state, kept in the crossws request/peer context. */
interface ConnectionState {
  /** The target mapped for this connection: one URL, or one per pool entry. */
  urls: string | string[]
  authHeaders?: Record<string, string>
  expiresAt?: number
  expiryReason?: string
}

const STATE = '_wsProxy'

/** All proxies created in this server, by route, for shutdown and `useWsProxy()`. */
export const wsProxies = new Map<string, WebSocketProxy>()

/**
 * Create the h3 handler of one proxied route: plain HTTP requests get `426 Upgrade Required`;
 * upgrades are mapped onto the rule's target (refused with 400 when the path is unsafe), checked
 * by the rule's `auth` when it has one, then relayed by `createWebSocketProxy`.
 */
export function defineWsProxyHandler(input: WsProxyHandlerInput) {
  const setup = setupRoute(input)
  /** Refuse an upgrade the proxy never sees (counted for the metrics). */
  const refuse = (status: number, text: string) => {
    countRouteRefusal(input.route, status)
    return reject(status, text)
  }
  const prefix = input.route.endsWith('/**') ? input.route.slice(0, -3) : input.route
  const baseURL = (input.runtimeConfig.app?.baseURL || '/').replace(/\/+$/, '')

  if (!setup.ok) {
    console.error(setup.error)
    return withHooks({
      upgrade: () => refuse(500, 'Internal Server Error'),
    })
  }
  const { proxy, rule, auth } = setup

  return withHooks({
    async upgrade(request) {
      try {
        let grant: RouteAuthGrant | undefined
        // Auth integration point (issue 5): the only place a rule's `auth` is applied.
        if (auth) {
          const result = await auth.check(request as unknown as Request)
          if (result instanceof Response) {
            countRouteRefusal(input.route, result.status)
            return result
          }
          grant = result
        }
        const { path, query: clientQuery } = splitRequestUrl(rawRequestUrl(request))
        // A token in the query never reaches the upstream, whichever pool entry it dials.
        const query = auth?.queryParams?.length ? withoutQueryParams(clientQuery, auth.queryParams) : clientQuery
        const local = baseURL ? pathBelow(path, baseURL) : path
        const suffix = local === undefined ? undefined : pathBelow(local || '/', prefix)
        if (suffix === undefined) return refuse(400, 'Bad Request')
        let urls: string | string[]
        if (rule.targets.length === 1) {
          const url = mapTarget(rule.targets[0]!, suffix, query)
          if (!url) return refuse(400, 'Bad Request')
          urls = url
        }
        else {
          // The path-escape guard applies to every entry: one refusal refuses the upgrade.
          urls = []
          for (const target of rule.targets) {
            const url = mapTarget(target, suffix, query)
            if (!url) return refuse(400, 'Bad Request')
            urls.push(url)
          }
        }

        const context = contextOf(request)
        context[STATE] = { urls, authHeaders: grant?.headers, expiresAt: grant?.expiresAt, expiryReason: grant?.expiryReason } satisfies ConnectionState
        if (grant && grant.user !== undefined) context.user = grant.user
        // `limits.perIp` behind a trusted proxy: the address it appended, not the proxy's own.
        if (setup.trustedAddress) {
          const address = lastForwardedFor(request.headers.get('x-forwarded-for'))
          if (address) context.clientAddress = address
        }
        return withContext(await proxy.upgrade(request), context)
      }
      catch (error) {
        console.error(`[nitro-ws-proxy] ${input.route}: upgrade failed:`, error)
        return refuse(500, 'Internal Server Error')
      }
    },
    open(peer) {
      const state = peer.context?.[STATE] as ConnectionState | undefined
      // A session or token that ends while connected closes the connection with 1008.
      if (state?.expiresAt !== undefined) scheduleExpiry(peer, peer.context, state.expiresAt, state.expiryReason)
      return proxy.open(peer)
    },
    message: (peer, message) => proxy.message(peer, message),
    close(peer, details) {
      clearExpiry(peer.context)
      return proxy.close(peer, details)
    },
    error(peer, error) {
      clearExpiry(peer.context)
      return proxy.error(peer, error)
    },
  })
}

/** The crossws hooks of a handler made by {@link defineWsProxyHandler} (Nitro 3 answers upgrades with them directly). */
export const WS_PROXY_HOOKS = '__wsProxyHooks'

type WsHooks = Parameters<typeof defineWebSocketHandler>[0]

/** h3's WebSocket handler for `hooks`, which keeps them (as {@link WS_PROXY_HOOKS}). */
function withHooks(hooks: WsHooks) {
  const handler = defineWebSocketHandler(hooks)
  Object.defineProperty(handler, WS_PROXY_HOOKS, { value: hooks })
  return handler
}

type RouteSetup =
  | { ok: true, proxy: WebSocketProxy, rule: CheckedRuleOptions, auth?: RouteAuth, trustedAddress: boolean }
  | { ok: false, error: string }

function setupRoute(input: WsProxyHandlerInput): RouteSetup {
  const entry = input.runtimeConfig.wsProxy?.[input.name]
  try {
    if (!entry || typeof entry !== 'object') {
      throw new TypeError(`[nitro-ws-proxy] runtimeConfig.wsProxy.${input.name} is missing`)
    }
    const rule = checkRuleOptions(
      entry,
      // `key` may name an entry below the option (`headers.host`): the env variable is the option's.
      key => `runtimeConfig.wsProxy.${input.name}.${key} (env ${input.envPrefix}${toEnvSuffix(/^\w+/.exec(key)![0])}) of route ${input.route}`,
    )
    const staticHeaders = rule.headers
    const forwardedContext = { devProxy: input.dev === true }
    const proxy = input.createWebSocketProxy({
      ...rule.proxy,
      ...createRouteObserver(input.route, input.observe ?? {}),
      target: peer => stateOf(peer).urls,
      // Known from the start, so active health checks run before the first connection.
      upstreams: rule.targets.map(target => mapTarget(target, '', '')).filter((url): url is string => url !== undefined),
      headers: peer => ({
        ...(rule.xForwarded ? forwardedHeaders(peer, forwardedContext) : {}),
        ...staticHeaders,
        ...stateOf(peer).authHeaders,
      }),
      ...(input.WebSocket ? { WebSocket: input.WebSocket } : {}),
      // Token entries of the subprotocol offer are neither forwarded upstream nor answered.
      ...(input.auth?.protocolOffer ? { protocolOffer: input.auth.protocolOffer } : {}),
    })
    wsProxies.set(input.route, proxy)
    const trustedAddress = rule.proxy.limits?.perIp !== undefined && input.runtimeConfig.wsProxy?.trustProxy as unknown === true
    return { ok: true, proxy, rule, auth: input.auth, trustedAddress }
  }
  catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    return {
      ok: false,
      error: `${message.startsWith('[nitro-ws-proxy]') ? '' : `[nitro-ws-proxy] ${input.route}: `}${message}. Upgrades on ${input.route} are answered 500 until this is fixed.`,
    }
  }
}

/** The upgrade's context (crossws 0.3 creates it before `upgrade`; create it if missing). */
function contextOf(request: object): Record<string, unknown> {
  const holder = request as { context?: Record<string, unknown> }
  if (!holder.context) Object.defineProperty(holder, 'context', { value: {}, enumerable: true, configurable: true })
  return holder.context!
}

/**
 * The upgrade result carrying the connection's context: crossws 0.3 hands `request.context` to
 * the peer, 0.4 only what the result's `context` holds (its request has no context before).
 */
function withContext(result: unknown, context: Record<string, unknown>): Response | ResponseInit {
  if (result instanceof Response) return result
  const init = result && typeof result === 'object' ? result as ResponseInit & { context?: Record<PropertyKey, unknown> } : {}
  const merged = init.context && init.context !== context ? { ...context, ...init.context } : context
  // crossws 0.4's result type has `context`; 0.3's (the one h3 v1 declares) does not.
  return { ...init, context: merged } as ResponseInit
}

function stateOf(peer: ProxyPeer): ConnectionState {
  const state = peer.context?.[STATE] as ConnectionState | undefined
  if (!state) throw new Error('[nitro-ws-proxy] connection has no mapped target')
  return state
}

/** The last `x-forwarded-for` entry: the one the trusted reverse proxy in front appended. */
function lastForwardedFor(value: string | null): string | undefined {
  if (!value) return undefined
  const hops = value.split(',')
  return hops[hops.length - 1]!.trim() || undefined
}
