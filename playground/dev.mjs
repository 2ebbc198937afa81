// `npm run dev`: the demo backend on a free loopback port, then `nitropack dev` for this
// playground with the `/chat/**` rule pointed at it through NITRO_WS_PROXY_CHAT_TARGET.
// Open http://localhost:3000 (PORT and HOST change the address).
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { toNodeListener } from 'h3'
import { build, createDevServer, createNitro, prepare } from 'nitropack/core'
import { startBackend } from './backend.mjs'

const rootDir = fileURLToPath(new URL('.', import.meta.url))
const port = Number(process.env.PORT) || 3000
const host = process.env.HOST || '127.0.0.1'

const backend = await startBackend(0)
const backendUrl = `ws://127.0.0.1:${backend.address().port}`
// The runtime override of the rule's target: read by the dev worker's runtime config.
process.env.NITRO_WS_PROXY_CHAT_TARGET = `${backendUrl}/rooms/**`

const nitro = await createNitro({ rootDir, dev: true }, { watch: true })
const devServer = createDevServer(nitro)
const server = createServer(toNodeListener(devServer.app))
server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => {})
  Promise.resolve(devServer.upgrade(req, socket, head)).catch(() => socket.destroy())
})
await new Promise((resolve, reject) => {
  server.once('error', reject)
  server.listen(port, host, resolve)
})
const ready = new Promise(resolve => nitro.hooks.hookOnce('dev:reload', resolve))
await prepare(nitro)
await build(nitro)
await ready

const shown = host === '127.0.0.1' || host === '0.0.0.0' ? 'localhost' : host
console.log(`\n  Demo backend:  ${backendUrl}  (NITRO_WS_PROXY_CHAT_TARGET=${process.env.NITRO_WS_PROXY_CHAT_TARGET})`)
console.log(`  Playground:    http://${shown}:${port}/  ← open this; /chat/<room> is proxied to ${backendUrl}/rooms/<room>`)
console.log(`  Live view:     http://${shown}:${port}/_ws-proxy/devtools  (connections, bytes, messages/s, closes; dev only)\n`)

let stopping = false
async function stop() {
  if (stopping) return
  stopping = true
  server.close()
  backend.close()
  await devServer.close().catch(() => {})
  await nitro.close().catch(() => {})
  process.exit(0)
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
