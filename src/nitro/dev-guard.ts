/**
 * Keeps `nitropack dev` alive when a WebSocket client goes away in the middle of its upgrade.
 *
 * What happens without it (nitropack 2.13.6, httpxy 0.5.6; it does not need this module):
 * the dev server's listener is `server.on('upgrade', (req, sock, head) => this.handleUpgrade(req,
 * sock, head))`, and `handleUpgrade` is async. It awaits a ready worker, then returns the promise
 * of httpxy's `proxy.ws(...)`, which relays the upgrade to the dev worker. httpxy rejects that
 * promise with the client socket's own error (`res.on('error', …)` in `_createProxyFn`, and the
 * `onSocketError` pass) whenever the socket errors before it closes: before the worker answered,
 * or after the 101 was relayed. Nobody handles the promise, so a client that resets its TCP
 * connection (ECONNRESET) or vanishes mid-write (EPIPE) makes an unhandled rejection, and Node
 * ends the dev server. While `handleUpgrade` waits for a worker (first build, reload), the
 * upgraded socket has no `error` listener at all (Node's HTTP server removed its own before
 * emitting `upgrade`), so a reset then is an uncaught `error` event: the same ending.
 *
 * What the guard does, and nothing more:
 * - only in a dev Nitro (`nitro.options.dev`), in the process that runs the modules (the
 *   `nitropack dev` CLI process, which also owns the dev server's listener), until that Nitro
 *   instance closes;
 * - it watches accepted connections through the `net.server.socket` diagnostics channel and,
 *   for the server that accepted one, wraps that server's `upgrade` listeners once (same order,
 *   same `this`, same arguments, same return value);
 * - when a wrapped listener returns a promise (an async upgrade handler, which the dev server's
 *   is; synchronous ones such as `ws`'s are left to themselves), the client socket gets an
 *   `error` listener that destroys it, and the promise gets a rejection handler;
 * - that handler swallows a rejection only when the client socket is destroyed and the reason
 *   is the socket's own error or a "peer went away" code (ECONNRESET, EPIPE, ECONNABORTED,
 *   ERR_STREAM_PREMATURE_CLOSE). Any other rejection (e.g. Nitro's own 503 "No worker
 *   available.") is re-thrown and stays unhandled, exactly as without the guard.
 *
 * httpxy has already cleaned up by then (it destroys its request to the worker, or ends the
 * worker-side socket after a 101), so there is nothing else to do.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { EventEmitter } from 'node:events'
import type { Nitro } from 'nitropack/types'

/** Error codes of a client that went away (reset, closed while written to, aborted). */
export const CLIENT_GONE_CODES: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE'])

/** The diagnostics channel published for every connection a `net.Server` accepts. */
const CHANNEL = 'net.server.socket'

/** Marks an `upgrade` listener this guard installed (a wrapper). */
const kWrapper = Symbol.for('nitro-ws-proxy.dev-upgrade-guard')

type UpgradeListener = (this: unknown, req: unknown, socket: SocketLike, head: unknown) => unknown

interface SocketLike {
  destroyed?: boolean
  errored?: unknown
  on?: (event: 'error', listener: (error: unknown) => void) => unknown
  destroy?: () => void
}

interface ServerLike extends Pick<EventEmitter, 'rawListeners' | 'removeAllListeners' | 'on' | 'once'> {}

/**
 * Install the guard for `nitro`'s dev server (no-op unless `nitro.options.dev`). Idempotent per
 * listener; removed when `nitro` closes (its wrapped listeners stay wrapped, they are harmless).
 *
 * @example
 * // in the Nitro module's setup
 * guardDevServerUpgrades(nitro)
 */
export function guardDevServerUpgrades(nitro: Pick<Nitro, 'options' | 'hooks'>): void {
  if (!nitro.options.dev) return
  const onSocket = (message: unknown) => {
    const server = (message as { socket?: { server?: unknown } } | undefined)?.socket?.server
    if (server && typeof (server as ServerLike).rawListeners === 'function') guardUpgradeListeners(server as ServerLike)
  }
  subscribe(CHANNEL, onSocket)
  nitro.hooks.hook('close', () => {
    unsubscribe(CHANNEL, onSocket)
  })
}

/**
 * The same guard for `nuxi dev`: Nuxt's CLI owns the listener and calls
 * `nuxt.server.upgrade(req, socket, head)` (Nitro's dev server) without handling its promise, so
 * the method itself is wrapped. Call it once `nuxt.server` exists (Nuxt's `ready` hook).
 *
 * @example
 * nuxt.hook('ready', () => guardNuxtDevServer(nuxt.server))
 */
export function guardNuxtDevServer(server: { upgrade?: unknown } | undefined): void {
  const upgrade = server?.upgrade as (UpgradeListener & { [kWrapper]?: true }) | undefined
  if (!server || typeof upgrade !== 'function' || upgrade[kWrapper]) return
  server.upgrade = wrapUpgradeListener(function (this: unknown, req, socket, head) {
    return upgrade.call(server, req, socket, head)
  })
}

/**
 * Wrap every `upgrade` listener of `server` that is not wrapped yet (see the file comment).
 * Exported for tests; {@link guardDevServerUpgrades} calls it for each server that accepts a
 * connection.
 */
export function guardUpgradeListeners(server: ServerLike): void {
  const listeners = server.rawListeners('upgrade') as Array<UpgradeListener & { [kWrapper]?: true, listener?: UpgradeListener }>
  if (listeners.length === 0 || listeners.every(listener => listener[kWrapper] || listener.listener)) return
  server.removeAllListeners('upgrade')
  for (const listener of listeners) {
    // `once` listeners go back as they were (their wrapper removes itself by identity).
    if (listener.listener) server.once('upgrade', listener.listener as (...args: any[]) => void)
    else server.on('upgrade', listener[kWrapper] ? listener : wrapUpgradeListener(listener))
  }
}

function wrapUpgradeListener(listener: UpgradeListener): UpgradeListener {
  const wrapper = function (this: unknown, req: unknown, socket: SocketLike, head: unknown) {
    const result = listener.call(this, req, socket, head)
    if (!isThenable(result)) return result
    // The async handler may wait (for a dev worker) before it listens to the socket itself.
    socket.on?.('error', () => socket.destroy?.())
    return result.then(undefined, (reason: unknown) => {
      if (isClientGone(socket, reason)) return undefined
      throw reason
    })
  } as UpgradeListener & { [kWrapper]?: true }
  wrapper[kWrapper] = true
  return wrapper
}

/** The rejection is the client connection ending under the handler, not a server fault. */
export function isClientGone(socket: SocketLike, reason: unknown): boolean {
  if (!socket.destroyed) return false
  if (reason !== undefined && reason === socket.errored) return true
  const code = (reason as { code?: unknown } | null | undefined)?.code
  return typeof code === 'string' && CLIENT_GONE_CODES.has(code)
}

function isThenable(value: unknown): value is Promise<unknown> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function'
}
