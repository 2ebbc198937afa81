/**
 * Scripted upstream servers the proxy dials in tests. All listen on 127.0.0.1 (or a unix
 * socket in the OS temp dir) and are closed by `cleanup()`.
 *
 * `startUpstream()` is a real `ws` WebSocketServer that echoes every frame with its type
 * (text stays text, binary stays binary) and obeys text commands:
 *
 * | frame                      | effect                                                     |
 * | -------------------------- | ---------------------------------------------------------- |
 * | `close`                    | `ws.close()` with no code (the proxy receives 1005)        |
 * | `close:<code>`             | `ws.close(code)`                                           |
 * | `close:<code>:<reason>`    | `ws.close(code, reason)` (reason may contain `:`)          |
 * | `terminate`                | destroys the TCP socket, no close frame (proxy sees 1006)  |
 * | `send-binary:<n>`          | sends `n` bytes (`i & 0xff`) as one binary frame           |
 * | `send-text:<text>`         | sends `text` as one text frame                             |
 * | anything else / binary     | echoed back with the same type                             |
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WebSocketServer, type WebSocket } from 'ws'
import { track } from './cleanup'

/** One frame as the upstream received it. */
export interface UpstreamFrame {
  data: Buffer
  isBinary: boolean
  /** `data` decoded as UTF-8, for convenience. */
  text: string
}

/** One handshake request that reached the upstream (accepted or not). */
export interface UpstreamHandshake {
  url: string
  headers: IncomingHttpHeaders
}

export interface UpstreamOptions {
  /** `ws` server `handleProtocols`: pick the subprotocol to answer (or `false` for none). */
  handleProtocols?: (protocols: Set<string>, request: IncomingMessage) => string | false
  /**
   * Answer the handshake with this HTTP status instead of 101 (e.g. 403), written by a raw
   * `upgrade` handler; a function decides per request (`undefined` accepts).
   */
  reject?: number | ((request: IncomingMessage) => number | undefined)
  /** Milliseconds to wait before answering each handshake (a slow upstream). */
  handshakeDelay?: number
  /** Listen on a unix socket in the OS temp dir instead of TCP; `url` is then `ws+unix:`. */
  unixSocket?: boolean
  /** Called for each accepted connection, synchronously after the handshake (e.g. to greet). */
  onConnection?: (ws: WebSocket, request: IncomingMessage) => void
}

export interface Upstream {
  /** `ws://127.0.0.1:<port>` (or `ws+unix:<path>:/`), without a trailing path. */
  readonly url: string
  /** TCP port (0 for a unix socket). */
  readonly port: number
  /** Open WebSocket connections right now. */
  readonly connections: number
  /**
   * Open transport sockets that carried a handshake request, upgraded or not. Sockets that
   * connect and never send a request are not counted: undici 6 (Node 22's global WebSocket)
   * opens such an idle pool connection after an aborted dial and drops it ~4 s later.
   */
  readonly sockets: number
  /** Open transport sockets that never sent a request (see `sockets`). */
  readonly idleSockets: number
  /** Every frame received, in order, over all connections. */
  readonly received: UpstreamFrame[]
  /** Every handshake request that reached the server, in order (rejected ones included). */
  readonly handshakes: UpstreamHandshake[]
  /** Request headers of the latest handshake, if any. */
  readonly lastHandshakeHeaders: IncomingHttpHeaders | undefined
  /** Close events of accepted connections, in order: what the upstream saw from the proxy. */
  readonly closes: Array<{ code: number, reason: string }>
  /** The server-side sockets of open connections. */
  readonly clients: Set<WebSocket>
  /**
   * The server-side socket of the one open connection (throws unless exactly one is open):
   * lets a test act as the upstream directly, e.g. `upstream.connection().close(4000, 'bye')`.
   */
  connection: () => WebSocket
  close: () => Promise<void>
}

/** Starts a scripted `ws` upstream (see the command table above). */
export async function startUpstream(options: UpstreamOptions = {}): Promise<Upstream> {
  const received: UpstreamFrame[] = []
  const handshakes: UpstreamHandshake[] = []
  const closes: Array<{ code: number, reason: string }> = []
  const sockets = new Set<Socket>()
  const requestSockets = new Set<Socket>()
  const timers = new Set<NodeJS.Timeout>()

  const server = createServer((_req, res) => { res.writeHead(426).end() })
  const wss = new WebSocketServer({ noServer: true, handleProtocols: options.handleProtocols })

  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })

  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    handshakes.push({ url: req.url ?? '', headers: { ...req.headers } })
    requestSockets.add(socket)
    socket.on('close', () => requestSockets.delete(socket))
    socket.on('error', () => socket.destroy())
    const status = typeof options.reject === 'function' ? options.reject(req) : options.reject
    if (status !== undefined) {
      socket.end(`HTTP/1.1 ${status} Rejected\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
      return
    }
    const accept = () => {
      if (socket.destroyed) return
      wss.handleUpgrade(req, socket, head, ws => wss.emit('connection', ws, req))
    }
    if (options.handshakeDelay) {
      const timer = setTimeout(() => { timers.delete(timer); accept() }, options.handshakeDelay)
      timers.add(timer)
    }
    else {
      accept()
    }
  })

  wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
    ws.on('error', () => {})
    ws.on('close', (code, reason) => closes.push({ code, reason: reason.toString() }))
    ws.on('message', (data, isBinary) => {
      const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)
      const text = buffer.toString('utf8')
      received.push({ data: buffer, isBinary, text })
      if (!isBinary && runCommand(ws, text)) return
      ws.send(buffer, { binary: isBinary })
    })
    options.onConnection?.(ws, req)
  })

  let url: string
  let port = 0
  if (options.unixSocket) {
    const path = join(tmpdir(), `nitro-ws-proxy-${randomUUID()}.sock`)
    await new Promise<void>(resolve => server.listen(path, resolve))
    url = `ws+unix:${path}:`
  }
  else {
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as { port: number }).port
    url = `ws://127.0.0.1:${port}`
  }

  const upstream: Upstream = {
    url,
    port,
    get connections() { return wss.clients.size },
    get sockets() { return requestSockets.size },
    get idleSockets() { return sockets.size - requestSockets.size },
    received,
    handshakes,
    get lastHandshakeHeaders() { return handshakes.at(-1)?.headers },
    closes,
    clients: wss.clients,
    connection: () => {
      if (wss.clients.size !== 1) throw new Error(`Expected one upstream connection, found ${wss.clients.size}`)
      return [...wss.clients][0]!
    },
    close: () => new Promise<void>((resolve) => {
      for (const timer of timers) clearTimeout(timer)
      for (const ws of wss.clients) ws.terminate()
      for (const socket of sockets) socket.destroy()
      wss.close()
      server.close(() => resolve())
    }),
  }
  track(upstream.close)
  return upstream
}

function runCommand(ws: WebSocket, text: string): boolean {
  if (text === 'close') {
    ws.close()
    return true
  }
  if (text.startsWith('close:')) {
    const [, code, ...reason] = text.split(':')
    ws.close(Number(code), reason.length > 0 ? reason.join(':') : undefined)
    return true
  }
  if (text === 'terminate') {
    ws.terminate()
    return true
  }
  if (text.startsWith('send-binary:')) {
    const bytes = Buffer.alloc(Number(text.slice('send-binary:'.length)))
    for (let i = 0; i < bytes.length; i++) bytes[i] = i & 0xFF
    ws.send(bytes, { binary: true })
    return true
  }
  if (text.startsWith('send-text:')) {
    ws.send(text.slice('send-text:'.length), { binary: false })
    return true
  }
  return false
}

/** A TCP server that accepts connections and never answers (a handshake that never completes). */
export interface HangingUpstream {
  /** `ws://127.0.0.1:<port>` */
  readonly url: string
  /** Open TCP sockets that sent a request (idle ones are not counted, see `Upstream.sockets`). */
  readonly sockets: number
  /** Connections that sent a request, since start. */
  readonly accepted: number
  /** Open TCP sockets that never sent anything. */
  readonly idleSockets: number
  close: () => Promise<void>
}

/** Starts a {@link HangingUpstream}. */
export async function startHangingUpstream(): Promise<HangingUpstream> {
  const all = new Set<Socket>()
  const sockets = new Set<Socket>()
  let accepted = 0
  const server = createNetServer((socket) => {
    all.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => {
      all.delete(socket)
      sockets.delete(socket)
    })
    socket.once('data', () => { // the request arrived: read and drop it, never answer
      accepted++
      if (!socket.destroyed) sockets.add(socket)
    })
    socket.resume()
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const hanging: HangingUpstream = {
    url: `ws://127.0.0.1:${port}`,
    get sockets() { return sockets.size },
    get accepted() { return accepted },
    get idleSockets() { return all.size - sockets.size },
    close: () => new Promise<void>((resolve) => {
      for (const socket of all) socket.destroy()
      server.close(() => resolve())
    }),
  }
  track(hanging.close)
  return hanging
}

/** A `ws://127.0.0.1:<port>` URL on which nothing listens (connections are refused). */
export async function refusedUrl(): Promise<string> {
  const server = createNetServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise<void>(resolve => server.close(() => resolve()))
  return `ws://127.0.0.1:${port}`
}
