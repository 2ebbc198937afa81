/**
 * Harness of the pool suite: upstreams in child processes (SIGKILL, SIGSTOP, restart on the same
 * port), upstreams with a switchable HTTP health endpoint, a slow 5xx, many clients opened in
 * bounded batches, and a wrapper that puts a user into the connection's context. Everything
 * listens on 127.0.0.1, registers itself with `track()` and is bounded in time.
 */
import type { ChildProcess } from 'node:child_process'
import type { IncomingMessage, Server } from 'node:http'
import type { Socket } from 'node:net'
import type { WebSocketProxy, WebSocketProxyOptions } from '../../src/core/types'
import type { ConnectOptions, CrosswsLine, TestClient } from '../helpers'
import { fork } from 'node:child_process'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { WebSocketServer } from 'ws'
import { createWebSocketProxy } from '../../src/index'
import { ctorOption, startProxy, track, withTimeout, wsConnect } from '../helpers'

/** The key `stats().upstreams` uses for an upstream URL (its origin). */
export function keyOf(url: string): string {
  const parsed = new URL(url)
  return `${parsed.protocol}//${parsed.host}`
}

/** max / min of a list of counts (Infinity when one is 0). */
export function spreadRatio(counts: number[]): number {
  return Math.max(...counts) / Math.min(...counts)
}

// --- the proxy -----------------------------------------------------------------------------------

export interface PoolProxyOptions {
  /** Per-connection context set in `upgrade` (e.g. `{ user: { id } }`), from the request. */
  context?: (request: Request) => Record<string, unknown> | undefined
}

/**
 * `createWebSocketProxy({ ...ctorOption(), ...options })` on the given crossws line. With
 * `context`, `upgrade` is wrapped the way an app authenticates: the user is put into
 * `request.context` (crossws 0.3 hands that object to the peer; crossws 0.4 gives `upgrade` no
 * `request.context` and takes the peer's context from the hook's result, so it is returned too).
 * Cleanup stops the proxy's active health checks (only `drainAll` stops them).
 */
export async function poolProxy(line: CrosswsLine, options: WebSocketProxyOptions, { context }: PoolProxyOptions = {}) {
  const proxy: WebSocketProxy = createWebSocketProxy({ ...ctorOption(), ...options })
  let hooks: object = proxy
  if (context) {
    hooks = {
      ...proxy,
      async upgrade(request: Request) {
        const extra = context(request) ?? {}
        const r = request as Request & { context?: Record<string, unknown> }
        if (r.context) Object.assign(r.context, extra)
        else Object.defineProperty(r, 'context', { value: { ...extra }, enumerable: true, configurable: true })
        const result = await (proxy.upgrade as unknown as (request: Request) => unknown)(request)
        if (result instanceof Response) return result
        const res = (result ?? {}) as { headers?: unknown, context?: Record<PropertyKey, unknown> }
        return { ...res, context: { ...res.context, ...extra } }
      },
    }
  }
  const server = await startProxy(hooks, { crossws: line })
  track(() => proxy.drainAll({ spread: 0 }))
  return { proxy, server }
}

// --- many clients --------------------------------------------------------------------------------

export interface OpenManyOptions {
  /** Handshakes in flight at once. @default 50 */
  concurrency?: number
  /** Per-client options (headers...). */
  options?: (i: number) => ConnectOptions
  /** Called with each client as it opens (e.g. to record its open time). */
  onOpen?: (client: TestClient, i: number, startedAt: number) => void
}

/** Opens `count` clients to `url(i)` in batches of `concurrency` (each batch fully open before the next). */
export async function openMany(url: string | ((i: number) => string), count: number, { concurrency = 50, options, onOpen }: OpenManyOptions = {}): Promise<TestClient[]> {
  const clients: TestClient[] = []
  for (let start = 0; start < count; start += concurrency) {
    const batch = await Promise.all(Array.from({ length: Math.min(concurrency, count - start) }, async (_, j) => {
      const i = start + j
      const startedAt = Date.now()
      const client = await wsConnect(typeof url === 'string' ? url : url(i), { timeout: 10_000, ...options?.(i) })
      onOpen?.(client, i, startedAt)
      return client
    }))
    clients.push(...batch)
  }
  return clients
}

/** Every client echoes one text frame (in batches), so each upstream leg is open end to end. */
export async function echoAll(clients: TestClient[], concurrency = 100): Promise<void> {
  for (let start = 0; start < clients.length; start += concurrency) {
    await Promise.all(clients.slice(start, start + concurrency).map(async (client, j) => {
      const text = `echo ${start + j}`
      client.send(text)
      const message = await client.next(5_000)
      if (message.text !== text || message.isBinary) throw new Error(`client ${start + j}: expected the echo ${JSON.stringify(text)}, got ${JSON.stringify(message.text)}`)
    }))
  }
}

// --- an upstream in a child process --------------------------------------------------------------

const CHILD_SCRIPT = fileURLToPath(new URL('./upstream-child.mjs', import.meta.url))

export interface ChildUpstream {
  /** `ws://127.0.0.1:<port>` */
  readonly url: string
  readonly port: number
  readonly child: ChildProcess
  readonly exited: Promise<NodeJS.Signals | number | null>
  /** Sends `signal` to this child, by its pid. */
  signal: (signal: NodeJS.Signals) => void
  /** Open connections and handshakes accepted since start, asked over IPC. */
  counts: (timeout?: number) => Promise<{ connections: number, accepted: number }>
}

/**
 * Forks upstream-child.mjs on `port` (0: any free port). Cleanup resumes it if stopped, then
 * SIGKILLs it (by pid) and waits (bounded) for its exit.
 */
export async function startChildUpstream(port = 0): Promise<ChildUpstream> {
  const child = fork(CHILD_SCRIPT, [], {
    execArgv: [],
    env: { ...process.env, UPSTREAM_PORT: String(port) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ?? code))
  })
  const alive = () => child.exitCode === null && child.signalCode === null
  track(async () => {
    if (alive() && child.pid !== undefined) {
      try { process.kill(child.pid, 'SIGCONT') }
      catch {}
      try { process.kill(child.pid, 'SIGKILL') }
      catch {}
    }
    await withTimeout(exited, 1_500, `exit of upstream process ${child.pid}`)
  })
  child.on('error', () => {})

  const listening = await withTimeout(new Promise<number>((resolve, reject) => {
    child.on('message', (message: { type?: string, port?: number, message?: string }) => {
      if (message?.type === 'listening') resolve(message.port!)
      if (message?.type === 'error') reject(new Error(`Upstream process failed to listen: ${message.message}`))
    })
    child.once('exit', code => reject(new Error(`Upstream process exited (${code}) before listening`)))
  }), 5_000, 'upstream process listening')

  let nextId = 0
  return {
    url: `ws://127.0.0.1:${listening}`,
    port: listening,
    child,
    exited,
    signal: (signal) => {
      if (alive() && child.pid !== undefined) process.kill(child.pid, signal)
    },
    counts: (timeout = 1_000) => {
      const id = ++nextId
      return withTimeout(new Promise<{ connections: number, accepted: number }>((resolve) => {
        const onMessage = (message: { type?: string, id?: number, connections?: number, accepted?: number }) => {
          if (message?.type !== 'count' || message.id !== id) return
          child.off('message', onMessage)
          resolve({ connections: message.connections!, accepted: message.accepted! })
        }
        child.on('message', onMessage)
        child.send({ type: 'count', id })
      }), timeout, 'counts of the upstream process')
    },
  }
}

// --- an upstream with a health endpoint ----------------------------------------------------------

export interface HealthUpstream {
  readonly url: string
  readonly port: number
  /** What `GET /healthz` answers: 200 when true, 503 when false (sets `healthStatus`). */
  healthy: boolean
  /** The status `GET /healthz` answers (e.g. 302 or 500). */
  healthStatus: number
  /** Whether WebSocket handshakes are accepted (false: answered 503). */
  acceptsHandshakes: boolean
  /** `GET /healthz` requests received. */
  readonly healthRequests: number
  /** Handshakes that carried `x-via: proxy` (proxied clients, not health checks), accepted or not. */
  readonly attempts: number
  /** Accepted handshakes that carried `x-via: proxy` (proxied clients, not health checks). */
  readonly proxied: number
  /** Accepted handshakes without it (handshake health checks). */
  readonly probes: number
  /** Open WebSocket connections that came through the proxy. */
  readonly connections: number
  close: () => Promise<void>
}

/**
 * A plain `node:http` server that also serves WebSocket (a `ws` server on it): `/healthz`
 * answers 200 or 503 as `healthy` says, handshakes are accepted or answered 503 as
 * `acceptsHandshakes` says, and WebSocket frames are echoed.
 */
export async function startHealthUpstream(): Promise<HealthUpstream> {
  let healthStatus = 200
  let acceptsHandshakes = true
  let healthRequests = 0
  let attempts = 0
  let proxied = 0
  let probes = 0
  const sockets = new Set<Socket>()
  const server: Server = createServer((req, res) => {
    if (req.url === '/healthz') {
      healthRequests++
      res.writeHead(healthStatus, { 'content-type': 'text/plain', 'location': '/elsewhere' }).end(String(healthStatus))
      return
    }
    res.writeHead(404).end()
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  const wss = new WebSocketServer({
    server,
    perMessageDeflate: false,
    verifyClient: (info: { req: IncomingMessage }, done: (ok: boolean, status?: number) => void) => {
      if (info.req.headers['x-via'] === 'proxy') attempts++
      done(acceptsHandshakes, 503)
    },
  })
  const viaProxy = new Set<unknown>()
  wss.on('connection', (ws, req: IncomingMessage) => {
    if (req.headers['x-via'] === 'proxy') {
      proxied++
      viaProxy.add(ws)
      ws.on('close', () => viaProxy.delete(ws))
    }
    else {
      probes++
    }
    ws.on('error', () => {})
    ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const upstream: HealthUpstream = {
    url: `ws://127.0.0.1:${port}`,
    port,
    get healthy() { return healthStatus === 200 },
    set healthy(value: boolean) { healthStatus = value ? 200 : 503 },
    get healthStatus() { return healthStatus },
    set healthStatus(value: number) { healthStatus = value },
    get acceptsHandshakes() { return acceptsHandshakes },
    set acceptsHandshakes(value: boolean) { acceptsHandshakes = value },
    get healthRequests() { return healthRequests },
    get attempts() { return attempts },
    get proxied() { return proxied },
    get probes() { return probes },
    get connections() { return viaProxy.size },
    close: () => new Promise<void>((resolve) => {
      for (const ws of wss.clients) ws.terminate()
      for (const socket of sockets) socket.destroy()
      wss.close()
      server.close(() => resolve())
    }),
  }
  track(upstream.close)
  return upstream
}

// --- a slow refusal ------------------------------------------------------------------------------

export interface RefusingUpstream {
  readonly url: string
  /** Upgrade requests received. */
  readonly handshakes: number
  /** Bytes received after the request head (frames sent before any answer: must stay 0). */
  readonly extraBytes: number
}

/** Answers every upgrade with `status` after `delay` ms (a backend that is up but failing). */
export async function startRefusingUpstream(status: number, delay: number): Promise<RefusingUpstream> {
  let handshakes = 0
  let extraBytes = 0
  const sockets = new Set<Socket>()
  const timers = new Set<NodeJS.Timeout>()
  const server = createServer((_req, res) => { res.writeHead(404).end() })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  server.on('upgrade', (_req, socket: Socket, head: Buffer) => {
    handshakes++
    extraBytes += head.length
    socket.on('data', (chunk: Buffer) => { extraBytes += chunk.length })
    socket.on('error', () => {})
    const timer = setTimeout(() => {
      timers.delete(timer)
      if (!socket.destroyed) socket.end(`HTTP/1.1 ${status} Failing\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
    }, delay)
    timers.add(timer)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  track(() => new Promise<void>((resolve) => {
    for (const timer of timers) clearTimeout(timer)
    for (const socket of sockets) socket.destroy()
    server.close(() => resolve())
  }))
  return {
    url: `ws://127.0.0.1:${port}`,
    get handshakes() { return handshakes },
    get extraBytes() { return extraBytes },
  }
}
