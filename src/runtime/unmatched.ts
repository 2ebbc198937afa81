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
 * Nitro plugin: refuse WebSocket upgrades on paths no WebSocket handler serves (404).
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
  // Every hook call is resolved through the same async path on purpose: crossws 0.3 runs a hook
  // once its resolution settles, so a peer's messages stay in order only if each takes as long.
  options.resolve = async (info: unknown) => {
    const hooks = await resolve(info)
    return hooks && Object.keys(hooks).length > 0 ? hooks : NOT_FOUND
  }
}
