// The proxy under test, alone in its process (forked by run.mjs with --expose-gc).
//   node bench/proxy.mjs <target> <upstream ws:// url> [<relay module>]
// Targets:
//   pipe       httpxy's ProxyServer.ws: a raw TCP pipe after the upgrade (Nitro's dev proxy)
//   crossws04  crossws 0.4.17 createWebSocketProxy on the crossws 0.4 node adapter
//   ours-0.3   nitro-ws-proxy on the crossws 0.3.5 node adapter (Nitro v2)
//   ours-0.4   nitro-ws-proxy on the crossws 0.4.17 node adapter
//   base-0.3   the same, from another build (the baseline: `run.mjs --baseline=<git ref>`)
//   base-0.4
//   pool-0.3   ours on crossws 0.3.5 with a pool: <upstream ws:// url> is a comma-separated list
//              (least-connections over every entry)
//   limits-0.3 ours on crossws 0.3.5 with every limit on, set high enough never to trip (the
//              cost of counting: connection caps, message and byte rate buckets)
//   observe-0.3 ours on crossws 0.3.5 with what `metrics: true, accessLog: true` turn on in a Nitro
//              app: the runtime's route observer (dist/runtime/observe.mjs) as onConnectionOpen /
//              onConnectionClose (histograms, last closes, diagnostics channels, a text access
//              log line per connection on stdout, ws-proxy:open/close through a hookable instance
//              with a listener, as Nitro's hooks), and the metrics rendered every second
//              (dist/runtime/metrics-format.mjs)
// <relay module> is the absolute path of the index.mjs whose createWebSocketProxy runs (ours-*,
// base-*). Without it, ours-* load BENCH_OURS_MODULE=<absolute path>, else ../dist/index.mjs,
// and base-* load BENCH_BASE_MODULE=<absolute path>.
// Reports { type: 'ready', port } over IPC; answers { cmd: 'usage', id, gc } with its own
// process.cpuUsage(), memoryUsage(), peak RSS so far (maxRss, bytes) and, for ours/base,
// proxy.stats().
import { createServer } from 'node:http'
import { pathToFileURL } from 'node:url'
import { WebSocket } from 'ws'

const [target, upstreamUrl, relayModule] = process.argv.slice(2)
const server = createServer((req, res) => {
  res.writeHead(404).end()
})
let stats

async function setup() {
  switch (target) {
    case 'pipe': {
      const { createProxyServer } = await import('httpxy')
      const proxy = createProxyServer({})
      proxy.on('error', () => {})
      const httpTarget = upstreamUrl.replace(/^ws/, 'http')
      server.on('upgrade', (req, socket, head) => {
        proxy.ws(req, socket, { target: httpTarget, xfwd: true }, head).catch(() => {})
      })
      return
    }
    case 'crossws04': {
      const { default: crossws } = await import('crossws04/adapters/node')
      const { createWebSocketProxy } = await import('crossws04')
      mount(crossws({ hooks: createWebSocketProxy({ target: upstreamUrl, WebSocket }) }))
      return
    }
    case 'ours-0.3':
    case 'ours-0.4':
    case 'base-0.3':
    case 'base-0.4':
    case 'pool-0.3':
    case 'limits-0.3':
    case 'observe-0.3': {
      const [kind, line] = target.split('-')
      const modulePath = relayModule || (kind !== 'base' ? process.env.BENCH_OURS_MODULE || '../dist/index.mjs' : process.env.BENCH_BASE_MODULE)
      if (!modulePath) throw new TypeError(`[bench] ${target} needs a module: pass its path as the third argument or set BENCH_BASE_MODULE.`)
      const { default: crossws } = await import(line === '0.3' ? 'crossws/adapters/node' : 'crossws04/adapters/node')
      const { createWebSocketProxy } = await import(modulePath.startsWith('/') ? pathToFileURL(modulePath).href : modulePath)
      const limits = kind === 'limits' ? { connections: 1e6, perIp: 1e6, perUser: 1e6, messagesPerSecond: 1e9, bytesPerSecond: 1e12 } : undefined
      const observer = kind === 'observe' ? await observe(modulePath) : undefined
      const hooks = createWebSocketProxy({ target: kind === 'pool' ? upstreamUrl.split(',') : upstreamUrl, WebSocket, limits, ...observer?.options })
      stats = hooks.stats
      observer?.start(hooks)
      mount(crossws({ hooks }))
      return
    }
    default:
      throw new TypeError(`[bench] Unknown proxy target "${target}".`)
  }
}

/** The runtime's observer and metrics, from the dist/ beside the relay module (observe-0.3). */
async function observe(modulePath) {
  const runtime = new URL('./runtime/', modulePath.startsWith('/') ? pathToFileURL(modulePath) : new URL(modulePath, import.meta.url))
  const { createRouteObserver } = await import(new URL('observe.mjs', runtime).href)
  const { observations, unmatchedRefusals } = await import(new URL('observe.mjs', runtime).href)
  const { formatMetrics } = await import(new URL('metrics-format.mjs', runtime).href)
  const { createHooks } = await import('hookable')
  const nitroHooks = createHooks()
  const seen = { open: 0, close: 0 }
  nitroHooks.hook('ws-proxy:open', () => { seen.open++ })
  nitroHooks.hook('ws-proxy:close', () => { seen.close++ })
  const route = '/bench/**'
  const options = createRouteObserver(route, { accessLog: 'text', callHook: (name, event) => nitroHooks.callHook(name, event) })
  return {
    options,
    start(hooks) {
      const proxies = new Map([[route, hooks]])
      // A scrape every second, as a Prometheus server would (more often than the usual 15 s).
      setInterval(() => formatMetrics({ proxies, observations, unmatchedRefusals }), 1000).unref()
    },
  }
}

function mount(adapter) {
  server.on('upgrade', (req, socket, head) => {
    Promise.resolve(adapter.handleUpgrade(req, socket, head)).catch(() => socket.destroy())
  })
}

process.on('message', (m) => {
  if (m?.cmd !== 'usage') return
  if (m.gc && globalThis.gc) {
    globalThis.gc()
    globalThis.gc()
  }
  const mem = process.memoryUsage()
  process.send({
    id: m.id,
    cpu: process.cpuUsage(),
    rss: mem.rss,
    heapUsed: mem.heapUsed,
    external: mem.external,
    maxRss: process.resourceUsage().maxRSS * 1024, // the kernel's high-water mark (ru_maxrss, KiB)
    stats: stats ? stats() : undefined,
  })
})
process.on('disconnect', () => process.exit(0))

await setup()
server.listen(0, '127.0.0.1', () => {
  process.send({ type: 'ready', port: server.address().port })
})
