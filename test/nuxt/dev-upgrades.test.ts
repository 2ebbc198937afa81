/**
 * The `nuxi dev` upgrade bridge for Nuxt 5 (src/nuxt/dev-upgrades.ts) against a real
 * `node:http` listener: which Vite servers get the stand-in `httpServer`, and that upgrades on
 * the listener reach what Nitro's plugin attached to it, until Nuxt closes. The whole path
 * (Nuxt 5 nightly, nitro beta, real clients) is tested by test/nuxt/nuxt5.test.ts.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { connect, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { bridgeDevUpgrades, DEV_UPGRADES_PLUGIN } from '../../src/nuxt/dev-upgrades'
import { waitFor } from '../helpers'

type Hook = (...args: any[]) => unknown

function fakeNuxt(dev: boolean) {
  const hooks = new Map<string, Hook[]>()
  return {
    options: { dev, vite: {} as { plugins?: any[] }, app: undefined as { baseURL?: string, buildAssetsDir?: string } | undefined },
    hook: (name: string, fn: Hook) => { hooks.set(name, [...(hooks.get(name) ?? []), fn]) },
    callHook: async (name: string, ...args: unknown[]) => { for (const fn of hooks.get(name) ?? []) await fn(...args) },
  }
}

function configure(nuxt: ReturnType<typeof fakeNuxt>, server: { httpServer: unknown, environments?: Record<string, unknown> }) {
  const plugin = nuxt.options.vite.plugins?.find(p => p.name === DEV_UPGRADES_PLUGIN)
  expect(plugin.configureServer.order).toBe('pre')
  plugin.configureServer.handler(server)
  return server
}

const servers: Server[] = []
const sockets = new Set<Socket>()
afterEach(async () => {
  // Upgraded sockets are no longer the HTTP server's to close (and it allows half-open ones).
  for (const socket of sockets) socket.destroy()
  sockets.clear()
  for (const server of servers.splice(0)) await new Promise(resolve => server.close(resolve))
}, 5000)

async function listener(): Promise<{ server: Server, port: number }> {
  const server = createServer((_req, res) => res.end())
  server.on('connection', (socket: Socket) => { sockets.add(socket) })
  servers.push(server)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as { port: number }).port }
}

function sendUpgrade(port: number, path: string): Socket {
  const socket = connect(port, '127.0.0.1')
  sockets.add(socket)
  socket.on('error', () => {})
  socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`)
  return socket
}

describe('nuxi dev upgrade bridge (Nuxt 5)', () => {
  it('adds nothing outside dev', () => {
    const nuxt = fakeNuxt(false)
    bridgeDevUpgrades(nuxt)
    expect(nuxt.options.vite.plugins).toBeUndefined()
  })

  it('leaves Vite servers alone that have no nitro environment (Nuxt 3/4) or an httpServer', () => {
    const nuxt = fakeNuxt(true)
    bridgeDevUpgrades(nuxt)
    expect(configure(nuxt, { httpServer: null, environments: { client: {}, ssr: {} } }).httpServer).toBeNull()
    const own = { on() {} }
    expect(configure(nuxt, { httpServer: own, environments: { nitro: {} } }).httpServer).toBe(own)
  })

  it('hands the listener\'s upgrades to what Nitro attached to the stand-in, until Nuxt closes', async () => {
    const nuxt = fakeNuxt(true)
    bridgeDevUpgrades(nuxt)
    const vite = configure(nuxt, { httpServer: null, environments: { client: {}, nitro: {} } })
    const standIn = vite.httpServer as { on: (event: string, fn: Hook) => void }
    expect(typeof standIn.on).toBe('function')
    // What nitro's configureViteDevServer does with it.
    const seen: string[] = []
    standIn.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      seen.push(`${req.url} ${Buffer.isBuffer(head)}`)
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n')
    })
    // Once Nitro's listener is on, plugins after it see no httpServer again (as without the
    // bridge): Vite DevTools takes one for a listening http.Server and calls its address().
    expect(vite.httpServer).toBeNull()
    const { server, port } = await listener()
    await nuxt.callHook('listen', server)
    await nuxt.callHook('listen', server) // a second call adds no second listener
    expect(server.listeners('upgrade')).toHaveLength(1)

    const client = sendUpgrade(port, '/live/x')
    let answer = ''
    client.on('data', (chunk) => { answer += chunk })
    await waitFor(() => answer.startsWith('HTTP/1.1 404'), { timeout: 3000, label: 'the answer of the stand-in listener' })
    expect(seen).toEqual(['/live/x true'])

    // Below the build assets path (Vite's HMR, DevTools): not Nitro's, as in Nuxt's CLI.
    nuxt.options.app = { baseURL: '/base/', buildAssetsDir: '/_nuxt/' }
    const assets = sendUpgrade(port, '/base/_nuxt/hmr')
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(seen).toEqual(['/live/x true'])
    expect(assets.destroyed).toBe(false)

    await nuxt.callHook('close')
    expect(server.listeners('upgrade')).toHaveLength(0)
  })
})
