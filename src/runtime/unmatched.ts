import { rejectUpgrade } from '../core/reject'
import { unmatchedRefusals } from './observe'

/** The part of the h3 app's crossws options this plugin wraps. */
interface WebSocketOptionsLike {
  resolve?: (info: unknown) => Promise<Record<string, unknown> | undefined> | Record<string, unknown> | undefined
}

/** Hooks for a path no WebSocket handler serves: refuse the upgrade. */
const NOT_FOUND = Object.freeze({
  upgrade: () => {
    unmatchedRefusals[404] = (unmatchedRefusals[404] ?? 0) + 1
    return rejectUpgrade(404, 'Not Found')
  },
})

/**
 * Nitro plugin: refuse WebSocket upgrades on paths no WebSocket handler serves (404), and
 * resolve each peer's hooks once instead of on every hook call.
 *
 * The module turns on `experimental.websocket`; with it, crossws 0.3 accepts an upgrade on any
 * path and gives it empty hooks, so a client that misspells a proxied path (`/livex`) would sit
 * on an open socket that relays nothing. Paths with a handler (ours or the app's) are untouched.
 */
export default function refuseUnmatchedUpgrades(nitroApp: { h3App: { websocket?: WebSocketOptionsLike } }): void {
  // The adapter is created from this same (cached) object after plugins ran.
  const options = nitroApp.h3App.websocket
  const resolve = options?.resolve
  if (!options || typeof resolve !== 'function') return
  options.resolve = (info: unknown) => {
    // crossws 0.3 resolves the route again on every hook call of a peer (open, message, close):
    // a peer's route cannot change, so it is looked up once and kept on the peer.
    const peer = isPeer(info) ? info as { [kHooks]?: Record<string, unknown> } : undefined
    const cached = peer?.[kHooks]
    if (cached) return cached
    const settle = (hooks: Record<string, unknown> | undefined) => {
      const result = hooks && Object.keys(hooks).length > 0 ? hooks : NOT_FOUND
      if (peer) peer[kHooks] = result
      return result
    }
    const resolved = resolve(info)
    return resolved instanceof Promise ? resolved.then(settle) : settle(resolved)
  }
}

const kHooks = Symbol.for('nitro-ws-proxy.resolved-hooks')

/** A crossws peer (hook calls after the upgrade), not the upgrade request. */
function isPeer(info: unknown): boolean {
  return typeof info === 'object' && info !== null && typeof (info as { send?: unknown }).send === 'function'
    && typeof (info as { close?: unknown }).close === 'function'
}
