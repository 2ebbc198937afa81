/**
 * Mounts crossws hooks (the proxy under test) on a real `node:http` server through the real
 * crossws node adapter of either line: 0.3 (what nitropack v2 runs) or 0.4.
 */
import type { Socket } from 'node:net'
import { createServer } from 'node:http'
import crossws03 from 'crossws/adapters/node'
import crossws04 from 'crossws04/adapters/node'
import { track } from './cleanup'

/** The crossws release lines the proxy must run on. */
export type CrosswsLine = '0.3' | '0.4'
export const CROSSWS_LINES: CrosswsLine[] = ['0.3', '0.4']

export interface ProxyServer {
  /** `ws://127.0.0.1:<port>` (append any path). */
  readonly url: string
  readonly port: number
  /** Rejections of the adapter's `handleUpgrade` (a hook threw during `upgrade`). */
  readonly upgradeErrors: unknown[]
  /** Terminates every socket and closes the server. */
  close: () => Promise<void>
}

export interface StartProxyOptions {
  crossws: CrosswsLine
  /**
   * Mount the hooks the way frameworks do (Nitro, h3): through the adapter's async `resolve`
   * option instead of `hooks`, so every hook call goes through a promise.
   */
  viaResolve?: boolean
  /**
   * Mount the way Nitro's node-server does (`adapter(h3App.websocket)`): this `resolve` (an h3
   * app's `app.websocket.resolve`) finds the route's hooks, and `hooks` become the adapter's
   * global hooks, called before the resolved ones (to observe, e.g. count `open`s).
   */
  resolve?: (info: any) => unknown
}

/**
 * Starts a `node:http` server on 127.0.0.1:0 whose `upgrade` event is handled by
 * `adapter({ hooks }).handleUpgrade(req, socket, head)` of the chosen crossws line.
 * Plain HTTP requests get 404.
 */
export async function startProxy(hooks: object, { crossws: line, viaResolve = false, resolve }: StartProxyOptions): Promise<ProxyServer> {
  // The two lines type their hooks differently; both accept the same hook shapes at runtime.
  const options = resolve ? { hooks, resolve } : viaResolve ? { resolve: async () => hooks } : { hooks }
  const adapter = line === '0.3'
    ? crossws03(options as any)
    : crossws04(options as any)
  const sockets = new Set<Socket>()
  const upgradeErrors: unknown[] = []

  const server = createServer((_req, res) => { res.writeHead(404).end() })
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  server.on('upgrade', (req, socket: Socket, head) => {
    socket.on('error', () => socket.destroy())
    // crossws 0.3 lets an error thrown by the `upgrade` hook escape as a rejection (and the
    // client would hang): record it and drop the socket so the test can assert on it.
    adapter.handleUpgrade(req, socket, head).catch((error: unknown) => {
      upgradeErrors.push(error)
      socket.destroy()
    })
  })

  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port

  const proxyServer: ProxyServer = {
    url: `ws://127.0.0.1:${port}`,
    port,
    upgradeErrors,
    close: async () => {
      adapter.closeAll(1001, '', true)
      if ('close' in adapter && typeof adapter.close === 'function') {
        await adapter.close().catch(() => {})
      }
      for (const socket of sockets) socket.destroy()
      await new Promise<void>(resolve => server.close(() => resolve()))
    },
  }
  track(proxyServer.close)
  return proxyServer
}
