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

/** Options of {@link forwardShutdownSignals}. */
export interface ForwardShutdownOptions {
  /**
   * Also disconnect each worker after signalling it, and end the primary if the workers are not
   * gone after `NITRO_SHUTDOWN_TIMEOUT` (30 s). For Nitro 3, whose workers (srvx) close their
   * server on the signal but never exit while the cluster's IPC channel is open, and whose
   * primary has no timeout of its own. A worker disconnected this way stops taking connections
   * and exits once its proxied connections are drained.
   * @default false (nitropack 2: its workers exit by themselves, its primary waits for them)
   */
  disconnect?: boolean
}

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
export function forwardShutdownSignals(options: ForwardShutdownOptions = {}): void {
  if (!cluster.isPrimary || process.env.NITRO_SHUTDOWN_DISABLED) return
  const signals = (process.env.NITRO_SHUTDOWN_SIGNALS || 'SIGTERM SIGINT').split(' ').map(s => s.trim()).filter(Boolean)
  let deadline: ReturnType<typeof setTimeout> | undefined
  for (const signal of signals) {
    // `on`, not `once`: Nitro's primary listens once; a repeated signal must not kill it early.
    process.on(signal as NodeJS.Signals, () => {
      for (const worker of Object.values(cluster.workers ?? {})) {
        if (worker && !worker.isDead()) {
          try {
            worker.process.kill(signal as NodeJS.Signals)
            if (options.disconnect && worker.isConnected()) worker.disconnect()
          }
          catch {}
        }
      }
      if (options.disconnect && !deadline) {
        // Unref'd: the primary still exits as soon as its last worker does.
        const timeout = Number.parseInt(process.env.NITRO_SHUTDOWN_TIMEOUT || '', 10) || 30_000
        deadline = setTimeout(() => {
          for (const worker of Object.values(cluster.workers ?? {})) {
            try { worker?.process.kill('SIGKILL') }
            catch {}
          }
          process.exit(1)
        }, timeout)
        deadline.unref()
      }
    })
  }
}
