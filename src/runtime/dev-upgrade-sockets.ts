/**
 * Nitro 3 dev only (`nitro dev`, `nuxi dev` on Nuxt 5): lets the proxy see the client's socket
 * during an upgrade, as it does everywhere else, to end an upstream it dialled first
 * (`upstreamFirst`) as soon as the client leaves before its 101.
 *
 * Why: Nitro 3's dev worker (nitro 3.0.260903-beta, `runtime/internal/vite/dev-worker.mjs`) calls
 * crossws 0.4's `handleUpgrade(req, socket, head)` without the web request its production
 * entries pass, and crossws then builds a stub request that keeps no reference to the Node
 * request or its socket. Without the socket, a dialled upstream stays open until the adoption
 * timeout (`connectTimeout`) instead.
 *
 * What it does, and nothing more: for each server in this process that accepts a connection
 * (the `net.server.socket` diagnostics channel), it adds one `upgrade` listener in front of the
 * others that records `req.headers` (the object crossws's stub keeps) → `socket` in a WeakMap
 * under a global symbol, which the core's fence reads (`getUpgradeSocket`). Nothing else is
 * changed or read; entries go with their request.
 */
import { subscribe } from 'node:diagnostics_channel'

/** Same key as the core's `UPGRADE_SOCKETS` (core/fence.ts). */
const UPGRADE_SOCKETS = Symbol.for('nitro-ws-proxy.upgrade-sockets')
/** Marks a server that has the recording listener. */
const kRecorded = Symbol.for('nitro-ws-proxy.upgrade-sockets.server')

interface ServerLike {
  prependListener: (event: 'upgrade', listener: (req: { headers?: unknown }, socket: unknown) => void) => unknown
  [kRecorded]?: true
}

/**
 * Start recording upgrade sockets in this process (idempotent).
 *
 * @example
 * // generated Nitro 3 plugin, dev builds only
 * recordDevUpgradeSockets()
 */
export function recordDevUpgradeSockets(): void {
  const store = globalThis as Record<symbol, unknown>
  if (store[UPGRADE_SOCKETS] instanceof WeakMap) return
  const record = new WeakMap<object, unknown>()
  store[UPGRADE_SOCKETS] = record
  const remember = (req: { headers?: unknown }, socket: unknown) => {
    if (req && req.headers !== null && typeof req.headers === 'object') record.set(req.headers, socket)
  }
  subscribe('net.server.socket', (message) => {
    const server = (message as { socket?: { server?: ServerLike } } | undefined)?.socket?.server
    if (!server || server[kRecorded] || typeof server.prependListener !== 'function') return
    server[kRecorded] = true
    server.prependListener('upgrade', remember)
  })
}
