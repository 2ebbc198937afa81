// Runs `nitropack dev` for a fixture on 127.0.0.1 and an ephemeral port (listhen cannot take
// port 0), then prints `READY <url>` once the first build is done. Used by the tests as a
// child process so it can be killed by pid. Usage: node dev-server.mjs <rootDir> [buildDir]
import { createServer } from 'node:http'
import { toNodeListener } from 'h3'
import { build, createDevServer, createNitro, prepare } from 'nitropack/core'

const [rootDir, buildDir] = process.argv.slice(2)
const nitro = await createNitro({ rootDir, dev: true, ...(buildDir ? { buildDir } : {}), logLevel: 1 }, { watch: false })
const devServer = createDevServer(nitro)
const server = createServer(toNodeListener(devServer.app))
server.on('upgrade', (req, socket, head) => {
  // A client that resets mid-handshake must not take the dev server down.
  socket.on('error', () => {})
  Promise.resolve(devServer.upgrade(req, socket, head)).catch(() => socket.destroy())
})
await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
const ready = new Promise(resolve => nitro.hooks.hookOnce('dev:reload', resolve))
await prepare(nitro)
await build(nitro)
await ready
process.stdout.write(`READY http://127.0.0.1:${server.address().port}\n`)

const stop = async () => {
  server.close()
  await devServer.close().catch(() => {})
  await nitro.close().catch(() => {})
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
