import { wsProxies } from './handler'

/** Minimal shape of the Nitro app a plugin receives. */
interface NitroAppLike {
  hooks: {
    hook: (name: 'close', fn: () => Promise<void> | void) => unknown
    callHook: (name: 'close') => Promise<unknown>
  }
}

const REASON = 'Server shutting down'
/** Milliseconds `closeAll` waits for closing handshakes before terminating sockets. */
const CLOSE_TIMEOUT = 5000

function closeAll(): Promise<void> {
  return Promise.all([...wsProxies].map(proxy => proxy.closeAll(1001, REASON, CLOSE_TIMEOUT))).then(() => {})
}

/**
 * Nitro plugin: on server shutdown, close every proxied connection (both sides) with
 * 1001 Going Away instead of dropping it.
 *
 * Nitro's node-server graceful shutdown destroys upgraded sockets before it calls the `close`
 * hook, so the close frames are sent from the shutdown signal itself (the same signals Nitro
 * listens to, and only when its graceful shutdown is enabled). The `close` hook covers every
 * other way a Nitro app is closed.
 *
 * A signal listener replaces the default exit. Where Nitro has its own (node presets) it exits
 * the process; where nothing else listens (the `bun` and `deno-server` presets) this plugin runs
 * the app's `close` hooks and exits once the connections are closed.
 */
export default function wsProxyShutdown(nitroApp: NitroAppLike): void {
  nitroApp.hooks.hook('close', closeAll)

  const proc = globalThis.process as NodeJS.Process | undefined
  if (typeof proc?.once !== 'function' || proc.env.NITRO_SHUTDOWN_DISABLED || (import.meta as { dev?: boolean }).dev) return
  const signals = (proc.env.NITRO_SHUTDOWN_SIGNALS || 'SIGTERM SIGINT').split(' ').map(s => s.trim()).filter(Boolean)
  for (const signal of signals) {
    proc.once(signal as NodeJS.Signals, () => {
      const closing = closeAll()
      // Checked after this listener removed itself: Nitro's own handler stays registered.
      if (proc.listenerCount(signal) > 0) return
      void closing
        .then(() => withTimeout(nitroApp.hooks.callHook('close'), CLOSE_TIMEOUT))
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
