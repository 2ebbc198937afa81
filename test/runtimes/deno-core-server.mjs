// A bare `Deno.serve` server relaying through the core with crossws's Deno adapter (both lines),
// for test/runtimes/deno-core.test.ts. Args: <line 0.3|0.4> <upstream ws url> <wrap yes|no>.
// Prints `PORT <n>` once listening on 127.0.0.1.
import { createWebSocketProxy, fixDenoAdapter } from '../../dist/index.mjs'

const [line, target, wrap] = Deno.args
const adapterPath = line === '0.3' ? '../../node_modules/crossws/dist/adapters/deno.mjs' : '../../node_modules/crossws04/dist/adapters/deno.mjs'
const { default: denoAdapter } = await import(adapterPath)
const proxy = createWebSocketProxy({
  target: peer => `${target}${new URL(peer.request.url).pathname}`,
  headers: peer => ({ 'x-client': peer.remoteAddress ?? 'unknown', 'x-host': peer.request.headers.get('host') ?? '' }),
})
const factory = wrap === 'yes' ? fixDenoAdapter(denoAdapter) : denoAdapter
const ws = factory({ hooks: proxy })
Deno.serve({
  port: 0,
  hostname: '127.0.0.1',
  onListen: ({ port }) => console.log(`PORT ${port}`),
}, (request, info) => ws.handleUpgrade(request, info))
