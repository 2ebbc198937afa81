/**
 * The Nuxt module in a Nuxt 5 nightly app (Nitro 3, h3 2, crossws 0.4) on Node 22
 * (test/fixtures/nuxt5, its own install, versions pinned in its package-lock.json):
 * `nuxi build` output and `nuxi dev`. See test/nuxt/lines.ts.
 */
import { describeNuxtLine } from './lines'

describeNuxtLine('nuxt5', {
  label: 'Nuxt 5 nightly (Node 22)',
  pageText: 'nitro-ws-proxy Nuxt 5 nightly on Node 22 fixture',
  dev: true,
  // Known (docs/nuxt.md): Nuxt 5's Nitro v2 compatibility layer swaps our runtime's h3 import, so
  // the 426 of a plain HTTP request becomes a 500; upgrades are not affected.
  plainHttpStatus: 500,
  // nitro 3.0.260903-beta's Vite dev server integration calls `server.httpServer.on('upgrade')`
  // on a Vite server Nuxt creates without an HTTP server, whenever WebSockets are on.
  devBlockedBy: { pattern: /Cannot read properties of null \(reading 'on'\)/, why: 'nitro 3.0.260903-beta crashes in configureViteDevServer when WebSockets are on' },
})
