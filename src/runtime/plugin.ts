import { useRuntimeConfig } from 'nitropack/runtime'
import { wsProxies } from './handler'
import { resolveShutdown, type ShutdownSettings } from './shutdown'

/** Minimal shape of the Nitro app a plugin receives. */
interface NitroAppLike {
  hooks: {
    hook: (name: 'close', fn: () => Promise<void> | void) => unknown
    callHook: (name: 'close') => Promise<unknown>
  }
}

/** Drain every proxy of this server (see `WebSocketProxy.drainAll`). */
function drainAll(settings: ShutdownSettings): Promise<void> {
  return Promise.all([...wsProxies.values()].map(proxy => proxy.drainAll(settings))).then(() => {})
}

/**
 * Nitro plugin: on server shutdown, drain every proxied connection instead of dropping it. New
 * upgrades get 503 with `Retry-After`; open connections are closed spread over
 * `shutdown.spread` ms (module option, env `NITRO_WS_PROXY_SHUTDOWN_SPREAD`), both legs with
 * `shutdown.code` (1001); closing handshakes that do not finish are terminated.
 *
 * The drain starts from the shutdown signal itself (the signals Nitro listens to, only when its
 * graceful shutdown is enabled): Nitro's node-server shutdown destroys sockets it sees as idle
 * the moment the signal arrives, and upgraded sockets look idle to it, so the drain marks them
 * busy first and Nitro waits for them (up to `NITRO_SHUTDOWN_TIMEOUT`). The `close` hook covers
 * every other way a Nitro app is closed.
 *
 * A signal listener replaces the default exit. Where Nitro has its own (node presets) it exits
 * the process; where nothing else listens (the `bun` and `deno-server` presets) this plugin runs
 * the app's `close` hooks and exits once the connections are closed.
 */
export default function wsProxyShutdown(nitroApp: NitroAppLike): void {
  const settings = resolveShutdown((useRuntimeConfig() as { wsProxy?: Record<string, unknown> }).wsProxy?.shutdown)
  // Closed by some other way than a signal: no time to spread, close all now.
  nitroApp.hooks.hook('close', () => drainAll({ ...settings, spread: 0 }))

  const proc = globalThis.process as NodeJS.Process | undefined
  if (typeof proc?.once !== 'function' || proc.env.NITRO_SHUTDOWN_DISABLED || (import.meta as { dev?: boolean }).dev) return
  const signals = (proc.env.NITRO_SHUTDOWN_SIGNALS || 'SIGTERM SIGINT').split(' ').map(s => s.trim()).filter(Boolean)
  const timeout = Number.parseInt(proc.env.NITRO_SHUTDOWN_TIMEOUT || '', 10) || 30_000
  if (settings.spread + 2000 > timeout) {
    console.warn(`[nitro-ws-proxy] wsProxy.shutdown.spread (${settings.spread} ms) + 2 s exceeds NITRO_SHUTDOWN_TIMEOUT (${timeout} ms): Nitro will cut the drain short`)
  }
  for (const signal of signals) {
    proc.once(signal as NodeJS.Signals, () => {
      const draining = drainAll(settings)
      // Checked after this listener removed itself: Nitro's own handler stays registered.
      if (proc.listenerCount(signal) > 0) return
      void draining
        .then(() => withTimeout(nitroApp.hooks.callHook('close'), 5000))
        .catch(error => console.error('[nitro-ws-proxy] shutdown:', error))
        .finally(() => proc.exit(0))
    })
  }
}

function withTimeout(promise: Promise<unknown>, ms: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms)
    promise.then(resolve, reject).finally(() => clearTimeout(timer))
  })
}
