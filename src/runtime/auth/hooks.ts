import type { Hooks, Peer } from 'crossws'
import type { RouteAuth, RouteAuthAccept } from './types'
import { rejectUpgrade } from '../reject'

/** Key of the auth state in `request.context` / `peer.context`. */
export const AUTH_CONTEXT_KEY = 'wsProxyAuth'

/** What an authenticated connection carries in `peer.context[AUTH_CONTEXT_KEY]`. */
export interface PeerAuth extends RouteAuthAccept {
  /** The route rule pattern. */
  route: string
}

type ContextHolder = { context?: Record<string, unknown> | null } | null | undefined

/** The auth state of a peer (or `ProxyPeer`, or upgrade request), if it was authenticated. */
export function getPeerAuth(peer: ContextHolder): PeerAuth | undefined {
  const state = peer?.context?.[AUTH_CONTEXT_KEY]
  return state && typeof state === 'object' ? state as PeerAuth : undefined
}

/**
 * Headers to add to the upstream handshake for this peer: pass as the proxy's `headers` option,
 * `createWebSocketProxy({ headers: peer => getUpstreamAuthHeaders(peer) })`.
 */
export function getUpstreamAuthHeaders(peer: ContextHolder): Record<string, string> | undefined {
  return getPeerAuth(peer)?.headers
}

const MAX_TIMER_DELAY = 2 ** 31 - 1
const expiryTimers = new WeakMap<object, ReturnType<typeof setTimeout>>()

/** Cancel the expiry close scheduled for this connection context, if any. */
export function clearExpiry(context: object | undefined | null): void {
  if (!context) {
    return
  }
  const timer = expiryTimers.get(context)
  if (timer) {
    clearTimeout(timer)
    expiryTimers.delete(context)
  }
}

/**
 * Close the peer with 1008 once `expiresAt` passes. Chains timers past setTimeout's ~24.8-day
 * limit (a longer delay would fire at once) and re-checks the clock when a timer fires.
 */
export function scheduleExpiry(peer: Pick<Peer, 'close'>, context: object, expiresAt: number): void {
  const arm = () => {
    expiryTimers.delete(context)
    const delay = expiresAt - Date.now()
    if (delay <= 0) {
      try {
        peer.close(1008, 'Session expired')
      }
      catch {}
      return
    }
    const timer = setTimeout(arm, Math.min(delay, MAX_TIMER_DELAY))
    timer.unref?.()
    expiryTimers.set(context, timer)
  }
  arm()
}

function isResponse(value: unknown): value is Response {
  return value instanceof Response
}

/**
 * Put session authentication in front of crossws hooks (the proxy's): `upgrade` answers
 * 401/403 before the inner `upgrade` runs (so nothing is dialled), stores the accepted state in
 * `request.context[AUTH_CONTEXT_KEY]` (it becomes `peer.context`, on crossws 0.3 and 0.4); `open`
 * schedules a 1008 close at the session's expiry; `close`/`error` cancel it.
 */
export function withRouteAuth<H extends Partial<Hooks>>(hooks: H, auth: RouteAuth): H & Required<Pick<Hooks, 'upgrade' | 'open' | 'close' | 'error'>> {
  const inner = hooks as Partial<Hooks>
  const wrapped: Partial<Hooks> = {
    ...inner,
    async upgrade(request) {
      const result = await auth.check(request as unknown as Request)
      if (isResponse(result)) {
        return result
      }
      // crossws 0.3 creates request.context before this hook; 0.4 only merges a returned `context`.
      const req = request as unknown as { context?: Record<string, unknown> }
      let context = req.context
      if (!context) {
        context = {}
        try {
          Object.defineProperty(req, 'context', { value: context, enumerable: true, configurable: true })
        }
        catch {}
      }
      context[AUTH_CONTEXT_KEY] = { route: auth.route, ...result } satisfies PeerAuth
      let res: unknown
      try {
        res = await inner.upgrade?.(request)
      }
      catch (error) {
        const response = (error as { response?: unknown })?.response ?? error
        if (isResponse(response)) {
          return response
        }
        console.error(`[nitro-ws-proxy] upgrade failed for routeRules['${auth.route}']; answered 500.`, error)
        return rejectUpgrade(500, 'Internal Server Error')
      }
      if (res === undefined || res === null) {
        return { context } as any
      }
      if (isResponse(res) || typeof res !== 'object') {
        return res as any
      }
      const resContext = (res as { context?: Record<string, unknown> }).context
      if (resContext && resContext !== context) {
        resContext[AUTH_CONTEXT_KEY] = context[AUTH_CONTEXT_KEY]
        return res as any
      }
      return { ...res, context } as any
    },
    open(peer) {
      try {
        return inner.open?.(peer)
      }
      finally {
        const context = peer.context as Record<string, unknown> | undefined
        const state = getPeerAuth(peer)
        if (context && state?.expiresAt !== undefined) {
          clearExpiry(context)
          scheduleExpiry(peer, context, state.expiresAt)
        }
      }
    },
    close(peer, details) {
      clearExpiry(peer.context as object | undefined)
      return inner.close?.(peer, details)
    },
    error(peer, error) {
      clearExpiry(peer.context as object | undefined)
      return inner.error?.(peer, error)
    },
  }
  return wrapped as H & Required<Pick<Hooks, 'upgrade' | 'open' | 'close' | 'error'>>
}
