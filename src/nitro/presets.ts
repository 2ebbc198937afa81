/**
 * Which Nitro presets can run a `wsProxy` rule, checked when the module is set up so that a
 * build for a preset that cannot relay WebSockets stops with the reason, instead of deploying a
 * route that answers 426 or hangs its clients.
 *
 * What was checked (nitropack 2.13.6, crossws 0.3.5; test/nitro/presets.test.ts):
 * - `deno-deploy`: built, then run by Deno 2 (`Deno.serve`): proxies. Supported.
 * - `vercel-edge`, `netlify-edge`: their server entries pass every request to the app as plain
 *   HTTP; there is no WebSocket adapter in them, so an upgrade reaches the route's h3 handler as
 *   a GET and is answered `426 Upgrade Required`.
 * - `cloudflare-module` (and `cloudflare-pages`, `cloudflare-worker`, `cloudflare-module-legacy`,
 *   whose entries use the same crossws adapter): run with workerd. Its `peer.close()` closes the
 *   client end of the `WebSocketPair` (the one handed to the runtime) instead of the accepted
 *   server end, so neither an upstream's close nor the answer to a client's close ever reaches
 *   the client: connections hang open until the client gives up.
 * - `cloudflare-durable`: run with workerd. Its Durable Object adapter drops the `context` the
 *   `upgrade` hook returns, so `open` gets a peer without the connection's mapped target and
 *   nothing is relayed (the client sits on an open socket).
 *
 * - Serverless functions `vercel`, `netlify`, `aws-lambda`: their entries hand the app one request
 *   at a time with no WebSocket adapter (checked by building each and calling the built handler
 *   with an upgrade request: 426). A function invocation cannot hold the upgraded socket.
 *
 * Presets not listed here are not refused: Node presets (`node-server`, `node-cluster`, `bun`,
 * `deno-server`, …) are the tested ones; dev (`nitro-dev`, `cloudflare-dev`) runs on Node.
 *
 * Nitro 3 (the `nitro` package, 3.0.260903-beta, crossws 0.4.17; test/nitro3/presets.test.ts)
 * has its own preset list, checked by reading each preset's server entry and crossws adapter:
 * - `netlify-edge`: the entry passes every request to `nitroApp.fetch` as plain HTTP (no
 *   WebSocket adapter), as in nitropack 2. There is no `vercel-edge` preset any more.
 * - `cloudflare-module`, `cloudflare-pages`: crossws 0.4.17's Cloudflare peer still closes the
 *   client end of the `WebSocketPair` (`_internal.ws`, the one handed to the runtime).
 * - `cloudflare-durable`: crossws 0.4.17's `handleDurableUpgrade` still drops the `context` the
 *   `upgrade` hook returns, and the peer is rebuilt from the socket on every message.
 * - `netlify`, `aws-lambda`: as on nitropack 2, the entries pass the request to `nitroApp.fetch`
 *   (srvx's `handleLambdaEvent` on Lambda) with no WebSocket adapter; the built handlers, called
 *   with an upgrade request, answer 426.
 * - `vercel`: Nitro 3's entry has a WebSocket adapter (crossws's `vercel`, the node adapter on
 *   the raw socket that Vercel's request context hands over for Vercel Functions' WebSockets, a
 *   public beta on Fluid compute): not refused, not tested here (it needs Vercel's runtime;
 *   outside it the adapter finds no such context and the upgrade is answered 426).
 */

/** The Nitro line a preset name belongs to (`2`: nitropack 2; `3`: the `nitro` package). */
export type PresetLine = 2 | 3

/** Why a preset is refused and what to use instead (both end up in the build error). */
export interface UnsupportedPreset {
  /** Why the preset cannot relay WebSockets (no final period). */
  why: string
  /** What to use instead (a sentence). */
  instead: string
}

const SERVER_PRESETS = 'Run the proxy on a server preset (node-server, node-cluster, bun, deno-server) or on deno-deploy, and point the WebSocket clients at that host.'

/** How to keep rules that only serve development (dev servers are never refused). */
const DEV_ONLY = 'Dev servers are never refused: rules meant only for development can stay if production builds leave them out (in Nuxt: under `$development: { routeRules: { ... } }`).'

const NO_ADAPTER = (entry: string): UnsupportedPreset => ({
  why: `nitropack's ${entry} entry has no WebSocket adapter: it passes every request to the app as plain HTTP, so an upgrade is answered 426 Upgrade Required`,
  instead: SERVER_PRESETS,
})

/** Serverless function presets (one invocation per request, no WebSocket adapter in the entry). */
const SERVERLESS = (entry: string, line: string): UnsupportedPreset => ({
  why: `${line}'s ${entry} entry is a serverless function with no WebSocket adapter: it hands the app one request at a time, so an upgrade is answered 426 Upgrade Required and no invocation holds the socket`,
  instead: SERVER_PRESETS,
})

const CLOUDFLARE_CLOSE: UnsupportedPreset = {
  why: 'the Cloudflare adapter of crossws 0.3 (what nitropack 2 uses) closes the client end of the WebSocketPair instead of the accepted server end, so closes from the upstream, and the answers to the client\'s own close, never reach the client and connections hang open',
  instead: SERVER_PRESETS,
}

/** Presets refused, by Nitro's resolved preset name (`nitro.options.preset`). */
export const UNSUPPORTED_PRESETS: Readonly<Record<string, UnsupportedPreset>> = Object.freeze({
  'vercel-edge': NO_ADAPTER('vercel-edge'),
  'netlify-edge': NO_ADAPTER('netlify-edge'),
  'vercel': SERVERLESS('vercel', 'nitropack'),
  'netlify': SERVERLESS('netlify', 'nitropack'),
  'aws-lambda': SERVERLESS('aws-lambda', 'nitropack'),
  'cloudflare-module': CLOUDFLARE_CLOSE,
  'cloudflare-module-legacy': CLOUDFLARE_CLOSE,
  'cloudflare-pages': CLOUDFLARE_CLOSE,
  'cloudflare-worker': CLOUDFLARE_CLOSE,
  'cloudflare-durable': {
    why: 'the Durable Object adapter of crossws 0.3 (what nitropack 2 uses) drops the context the upgrade hook returns, so a connection opens without its mapped target and nothing is relayed',
    instead: SERVER_PRESETS,
  },
})

const CLOUDFLARE_CLOSE_3: UnsupportedPreset = {
  why: 'the Cloudflare adapter of crossws 0.4 (what Nitro 3 uses, checked with 0.4.17) closes the client end of the WebSocketPair instead of the accepted server end, so closes from the upstream, and the answers to the client\'s own close, never reach the client and connections hang open',
  instead: SERVER_PRESETS,
}

/** Presets refused on Nitro 3, by its resolved preset name. */
export const UNSUPPORTED_PRESETS_3: Readonly<Record<string, UnsupportedPreset>> = Object.freeze({
  'netlify-edge': {
    why: 'Nitro 3\'s netlify-edge entry has no WebSocket adapter: it passes every request to the app as plain HTTP, so an upgrade is answered 426 Upgrade Required',
    instead: SERVER_PRESETS,
  },
  // Not `vercel`: Nitro 3's entry has an adapter for Vercel Functions' WebSockets (see above).
  'netlify': SERVERLESS('netlify', 'Nitro 3'),
  'aws-lambda': SERVERLESS('aws-lambda', 'Nitro 3'),
  'cloudflare-module': CLOUDFLARE_CLOSE_3,
  'cloudflare-pages': CLOUDFLARE_CLOSE_3,
  'cloudflare-durable': {
    why: 'the Durable Object adapter of crossws 0.4 (what Nitro 3 uses, checked with 0.4.17) drops the context the upgrade hook returns, so a connection opens without its mapped target and nothing is relayed',
    instead: SERVER_PRESETS,
  },
})

/**
 * The error message for a build of `preset` with `wsProxy` rules, or `undefined` when the preset
 * can run them. Dev servers (`nitroOptions.dev`) always can: they run on Node whatever the
 * preset.
 *
 * @param preset Nitro's resolved preset name (`nitro.options.preset`, e.g. `'vercel-edge'`).
 * @param nitroOptions The Nitro options (only `dev` is read).
 * @param line The Nitro line (`detectNitroLine`): nitropack 2 and Nitro 3 refuse different presets.
 * @returns `[nitro-ws-proxy] preset '<preset>' cannot run a WebSocket proxy: <why>. <instead>`,
 *   or `undefined`.
 *
 * @example
 * const problem = checkPreset(nitro.options.preset, nitro.options, detectNitroLine(nitro))
 * if (problem) throw new Error(problem)
 */
export function checkPreset(preset: string, nitroOptions: { dev?: boolean } = {}, line: PresetLine = 2): string | undefined {
  if (nitroOptions.dev) return undefined
  const table = line === 3 ? UNSUPPORTED_PRESETS_3 : UNSUPPORTED_PRESETS
  const entry = Object.hasOwn(table, preset) ? table[preset] : undefined
  if (!entry) return undefined
  return `[nitro-ws-proxy] preset '${preset}' cannot run a WebSocket proxy: ${entry.why}. ${entry.instead} ${DEV_ONLY}`
}
