/**
 * `nuxi dev` on Nuxt 5 (Nitro 3 as a Vite environment): hands WebSocket upgrades to Nitro.
 *
 * What happens without it (nuxt-nightly 5.0.0-29830089, nitro 3.0.260903-beta): Nitro's Vite
 * plugin, in `configureServer`, attaches its upgrade listener with
 * `server.httpServer.on('upgrade', …)` whenever WebSockets are on (`features.websocket`, which
 * this module sets). Nuxt runs Vite in middleware mode, so `server.httpServer` is null; Nuxt's own
 * `nuxt:vite-server:dev-listener` plugin fills it with `nuxt._devServerListener`, which is only
 * set by the `listen` hook, after Vite's `configureServer` ran. So `nuxi dev` fails at start with
 * `Cannot read properties of null (reading 'on')`, and there is no upgrade path to Nitro at all
 * (Nuxt 5's dev `nuxt.server` has no `upgrade` for the CLI to call).
 *
 * What the bridge does, and nothing more:
 * - it adds a Vite plugin whose `configureServer` runs first (`order: 'pre'`) and, only on a
 *   Vite server that has a `nitro` environment and no `httpServer`, sets `httpServer` to a
 *   stand-in event emitter, on which Nitro's plugin then attaches its listener; once it has,
 *   `httpServer` is put back (`null`) for the plugins after it (Vite DevTools);
 * - on Nuxt's `listen` hook (the CLI's real HTTP listener) it re-emits that listener's `upgrade`
 *   and `close` events on the stand-in, so Nitro's listener sees the upgrades as it would on
 *   Vite's own server (it leaves `vite-*` subprotocols alone), except those below the app's
 *   build assets path (`/_nuxt/`), which the CLI keeps from Nitro too (Vite's HMR, DevTools);
 * - when Nuxt closes (a restart or the end), it stops re-emitting.
 *
 * On Nuxt 3 and 4 (nitropack 2, no `nitro` environment) the plugin does nothing: there the
 * CLI's `nuxt.server.upgrade` serves upgrades.
 */
import { EventEmitter } from 'node:events'
import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'

/** The parts of a Vite dev server the bridge reads and writes. */
interface ViteServerLike {
  httpServer: unknown
  environments?: Record<string, unknown>
}

/** The parts of the Nuxt instance the bridge uses. */
interface NuxtLike {
  options: { dev?: boolean, vite?: { plugins?: unknown[] }, app?: { baseURL?: string, buildAssetsDir?: string } }
  hook: (name: string, fn: (...args: any[]) => unknown) => unknown
}

/** The Vite plugin's name (also how a test finds it). */
export const DEV_UPGRADES_PLUGIN = 'nitro-ws-proxy:nuxt-dev-upgrades'

/**
 * Install the bridge for `nuxt` (no-op unless `nuxt.options.dev`).
 *
 * @example
 * // in the Nuxt module's setup
 * bridgeDevUpgrades(nuxt)
 */
export function bridgeDevUpgrades(nuxt: NuxtLike): void {
  if (!nuxt.options.dev) return
  const standIn = new EventEmitter()
  let used = false

  const plugin = {
    name: DEV_UPGRADES_PLUGIN,
    apply: 'serve' as const,
    configureServer: {
      order: 'pre' as const,
      handler(server: ViteServerLike) {
        // Exactly the case Nitro's plugin cannot handle: its environment, no HTTP server.
        if (server.httpServer || !server.environments || !('nitro' in server.environments)) return
        const previous = server.httpServer
        server.httpServer = standIn
        used = true
        // Only Nitro's plugin may see the stand-in: put the old value back as soon as it attached
        // its listener (synchronously, inside its `server.httpServer.on('upgrade', …)`). Plugins
        // that run later take `httpServer` for a listening `http.Server`: Vite DevTools (Nuxt
        // DevTools 4 on Nuxt 5) calls its `address()` and stopped `nuxi dev` with
        // `httpServer.address is not a function`; with `null` it serves as it does without us.
        const restore = (event: string | symbol) => {
          if (event !== 'upgrade') return
          standIn.off('newListener', restore)
          if (server.httpServer === standIn) server.httpServer = previous
        }
        standIn.on('newListener', restore)
      },
    },
  }
  const options = nuxt.options as { vite?: { plugins?: unknown[] } }
  options.vite ||= {}
  options.vite.plugins ||= []
  options.vite.plugins.push(plugin)

  let detach: (() => void) | undefined
  nuxt.hook('listen', (listener: Server) => {
    if (detach) return
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (used && !req.url?.startsWith(assetsPath(nuxt))) standIn.emit('upgrade', req, socket, head)
    }
    const onClose = () => standIn.emit('close')
    listener.on('upgrade', onUpgrade)
    listener.on('close', onClose)
    detach = () => {
      listener.off('upgrade', onUpgrade)
      listener.off('close', onClose)
    }
  })
  nuxt.hook('close', () => {
    detach?.()
    standIn.emit('close')
    standIn.removeAllListeners()
  })
}

/** `${baseURL}${buildAssetsDir}` (`/_nuxt/`): upgrades there are not Nitro's (the CLI's own rule). */
function assetsPath(nuxt: NuxtLike): string {
  const app = nuxt.options.app ?? {}
  const base = app.baseURL?.startsWith('./') ? app.baseURL.slice(1) : (app.baseURL ?? '/')
  return `${base.replace(/\/$/, '')}/${(app.buildAssetsDir ?? '/_nuxt/').replace(/^\//, '')}`
}
