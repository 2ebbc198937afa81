import { rejectUpgrade } from '../core/reject'
import { unmatchedRefusals } from './observe'

type Hooks = Record<string, unknown>

/** The part of the h3 app's crossws options this plugin wraps. */
interface WebSocketOptionsLike {
  resolve?: (info: unknown) => Promise<Hooks | undefined> | Hooks | undefined
}

/** What crossws 0.3 passes to `resolve`: the upgrade request, or a peer (which has `request`). */
interface ResolveInfo {
  context?: unknown
  request?: { url?: unknown }
  url?: unknown
}

/** One connection's resolution: the URL it was made for and the hooks it settles to. */
interface Resolution {
  url: unknown
  hooks: Promise<Hooks>
}

/** Hooks for a path no WebSocket handler serves: refuse the upgrade. */
const NOT_FOUND = Object.freeze({
  upgrade: () => {
    unmatchedRefusals[404] = (unmatchedRefusals[404] ?? 0) + 1
    return rejectUpgrade(404, 'Not Found')
  },
})

/**
 * Nitro plugin (nitropack 2, crossws 0.3): resolve a connection's hooks once, and refuse WebSocket
 * upgrades on paths no WebSocket handler serves (404).
 *
 * Once: crossws 0.3 calls `resolve` on every hook call (upgrade, open, each message, close), and
 * h3's `resolve` parses the URL and walks the router each time. The first call of a connection
 * (its upgrade) stores the resulting promise under the connection's context object (created by
 * crossws before `upgrade`, the same object as `peer.context` afterwards); every later call of
 * that connection returns the very same promise. Order: crossws runs a hook when its resolution
 * settles, so a peer's hooks stay in call order only if every call waits on resolutions of the
 * same depth; one shared promise, never a synchronous value, guarantees it (its `then` callbacks
 * run in registration order). The entry is keyed weakly by the context, so it dies with the
 * connection, and holds the URL it was made for: a call whose URL differs (a context shared by
 * app code) resolves on its own path, uncached.
 *
 * 404: the module turns on `experimental.websocket`; with it, crossws 0.3 accepts an upgrade on
 * any path and gives it empty hooks, so a client that misspells a proxied path (`/livex`) would
 * sit on an open socket that relays nothing. Paths with a handler (ours or the app's) are
 * untouched.
 *
 * @example
 * ```ts
 * // nitro module (build time): runs after nitropack's own plugins, before the first upgrade
 * nitro.options.plugins.push(`${runtimeDir}unmatched.mjs`)
 * ```
 */
export default function resolveOncePerConnection(nitroApp: { h3App: { websocket?: WebSocketOptionsLike } }): void {
  // The adapter is created from this same (cached) object after plugins ran.
  const options = nitroApp.h3App.websocket
  const resolve = options?.resolve
  if (!options || typeof resolve !== 'function') return
  const resolutions = new WeakMap<object, Resolution>()
  const resolveFresh = async (info: unknown): Promise<Hooks> => {
    const hooks = await resolve(info)
    return hooks && Object.keys(hooks).length > 0 ? hooks : NOT_FOUND
  }
  options.resolve = (info: unknown) => {
    const key = connectionKey(info)
    if (!key) return resolveFresh(info)
    const url = urlOf(info as ResolveInfo)
    if (url === undefined) return resolveFresh(info)
    const known = resolutions.get(key)
    if (known) return known.url === url ? known.hooks : resolveFresh(info)
    const hooks = resolveFresh(info)
    resolutions.set(key, { url, hooks })
    return hooks
  }
}

/**
 * The object that lives exactly as long as the connection: its context (the upgrade request's
 * `context`, which crossws 0.3 hands on as `peer.context`), else the request or peer itself.
 */
function connectionKey(info: unknown): object | undefined {
  if (!info || typeof info !== 'object') return undefined
  const context = (info as ResolveInfo).context
  return context && typeof context === 'object' ? context : info
}

/**
 * The URL h3's `resolve` routes on (the same expression); `undefined` when reading it throws (a
 * runtime whose request is closed after the 101): such a call is resolved uncached, and h3's
 * own read rejects its promise, as without this plugin, instead of throwing into the adapter.
 */
function urlOf(info: ResolveInfo): unknown {
  try {
    return info.request?.url || info.url
  }
  catch {
    return undefined
  }
}
