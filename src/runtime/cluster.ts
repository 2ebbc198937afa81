/**
 * The primary process of Nitro's `node-cluster` preset, as the proxy needs it: pass the shutdown
 * signal on to the workers.
 *
 * Orchestrators (`docker stop`, Kubernetes with the server as PID 1) signal only the primary.
 * Nitro's primary does not tell its workers; it waits for them to exit (up to
 * `NITRO_SHUTDOWN_TIMEOUT`, 30 s) and then exits, dropping every proxied socket without a close
 * frame. Passing the signal on runs each worker's own graceful shutdown: its proxied connections
 * get 1001 on both legs and it exits, and then the primary exits too.
 */
import cluster from 'node:cluster'

/**
 * In the cluster primary, send each configured shutdown signal on to every worker (the same
 * signals and switch Nitro's graceful shutdown reads: `NITRO_SHUTDOWN_SIGNALS`,
 * `NITRO_SHUTDOWN_DISABLED`). Does nothing in a worker.
 *
 * @example
 * ```ts
 * // the generated node-cluster entry
 * import 'nitropack/dist/presets/node/runtime/node-cluster.mjs'
 * import { forwardShutdownSignals } from 'nitro-ws-proxy/dist/runtime/cluster.mjs'
 * forwardShutdownSignals()
 * ```
 */
export function forwardShutdownSignals(): void {
  if (!cluster.isPrimary || process.env.NITRO_SHUTDOWN_DISABLED) return
  const signals = (process.env.NITRO_SHUTDOWN_SIGNALS || 'SIGTERM SIGINT').split(' ').map(s => s.trim()).filter(Boolean)
  for (const signal of signals) {
    // `on`, not `once`: Nitro's primary listens once; a repeated signal must not kill it early.
    process.on(signal as NodeJS.Signals, () => {
      for (const worker of Object.values(cluster.workers ?? {})) {
        if (worker && !worker.isDead()) {
          try { worker.process.kill(signal as NodeJS.Signals) }
          catch {}
        }
      }
    })
  }
}
