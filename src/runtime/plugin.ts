import { wsProxies } from './handler'

/** Minimal shape of the Nitro app a plugin receives. */
interface NitroAppLike {
  hooks: { hook: (name: 'close', fn: () => Promise<void> | void) => unknown }
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
 * listens to, and only when its graceful shutdown is enabled, so that the process still exits).
 * The `close` hook covers every other way a Nitro app is closed.
 */
export default function wsProxyShutdown(nitroApp: NitroAppLike): void {
  nitroApp.hooks.hook('close', closeAll)

  const proc = globalThis.process as NodeJS.Process | undefined
  if (typeof proc?.once !== 'function' || proc.env.NITRO_SHUTDOWN_DISABLED || (import.meta as { dev?: boolean }).dev) return
  const signals = (proc.env.NITRO_SHUTDOWN_SIGNALS || 'SIGTERM SIGINT').split(' ').map(s => s.trim()).filter(Boolean)
  for (const signal of signals) {
    proc.once(signal as NodeJS.Signals, () => {
      void closeAll()
    })
  }
}
