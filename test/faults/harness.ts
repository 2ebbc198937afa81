/**
 * Harness of the fault suite: a proxy with a healthy bystander connection, an upstream in its
 * own process, WebSocket frames written and read by hand (a raw client and a raw upstream), and
 * process-level resource probes. Everything listens on 127.0.0.1 port 0, registers itself with
 * `track()` and is bounded in time.
 */
import type { ChildProcess } from 'node:child_process'
import type { Socket } from 'node:net'
import type { WebSocketProxy, WebSocketProxyOptions } from '../../src/core/types'
import type { CrosswsLine, ProxyServer, TestClient, Upstream } from '../helpers'
import { fork } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { connect, createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { WebSocketServer } from 'ws'
import { startUpstream, track, waitFor, withTimeout, wsConnect } from '../helpers'
import { proxied } from '../core/setup'

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

// --- a proxy with a healthy bystander ---------------------------------------------------------

export interface FaultRig {
  proxy: WebSocketProxy
  server: ProxyServer
  /** The upstream of the bystander (`/healthy`). */
  healthy: Upstream
  /** A client connected through the same proxy before the fault. */
  bystander: TestClient
  /** The bystander still relays text and binary both ways, and saw nothing else. */
  expectHealthy: (label?: string) => Promise<void>
}

/**
 * A proxy whose `/healthy` path goes to an in-process echo upstream and every other path to
 * `faulty` (a URL, or a function of the path). A bystander client is connected on `/healthy`
 * and has echoed once before this returns, so it is fully open when the fault happens.
 */
export async function faultRig(
  line: CrosswsLine,
  faulty: string | ((pathname: string) => string),
  options: Omit<WebSocketProxyOptions, 'target'> = {},
): Promise<FaultRig> {
  const healthy = await startUpstream()
  const { proxy, server } = await proxied(line, {
    ...options,
    target: (peer) => {
      const { pathname } = new URL(peer.request.url)
      if (pathname === '/healthy') return healthy.url
      return typeof faulty === 'string' ? faulty : faulty(pathname)
    },
  })
  const bystander = await wsConnect(`${server.url}/healthy`)
  let round = 0
  const expectHealthy = async (label = 'after the fault') => {
    round++
    const text = `bystander ${label} #${round}`
    const binary = randomBytes(1024)
    const before = bystander.messages.length
    bystander.send(text)
    bystander.send(binary, true)
    const echoedText = await bystander.next()
    const echoedBinary = await bystander.next()
    if (echoedText.text !== text || echoedText.isBinary) {
      throw new Error(`Bystander: expected the text echo ${JSON.stringify(text)}, got ${JSON.stringify(echoedText.text)} (binary: ${echoedText.isBinary})`)
    }
    if (!echoedBinary.isBinary || !echoedBinary.data.equals(binary)) {
      throw new Error(`Bystander: binary echo differs (${echoedBinary.data.length} bytes, binary: ${echoedBinary.isBinary})`)
    }
    if (bystander.messages.length !== before + 2) {
      throw new Error(`Bystander received ${bystander.messages.length - before} messages, expected 2`)
    }
    if (!bystander.isOpen) throw new Error('Bystander is no longer open')
  }
  await expectHealthy('before the fault')
  return { proxy, server, healthy, bystander, expectHealthy }
}

/** Closes the bystander normally and waits until the proxy counts no open connection. */
export async function closeBystander(rig: FaultRig): Promise<void> {
  await rig.bystander.close(1000)
  await waitFor(() => rig.proxy.stats().open === 0 && rig.healthy.connections === 0, {
    label: 'stats().open back to 0 after the bystander left',
    describe: () => ({ open: rig.proxy.stats().open, healthyConnections: rig.healthy.connections }),
  })
}

// --- an upstream in a child process ------------------------------------------------------------

const UPSTREAM_SCRIPT = fileURLToPath(new URL('./upstream-process.mjs', import.meta.url))

export interface UpstreamProcess {
  /** `ws://127.0.0.1:<port>` */
  readonly url: string
  readonly child: ChildProcess
  /** Resolves with the signal (or exit code) once the process is gone. */
  readonly exited: Promise<NodeJS.Signals | number | null>
  /** Sends `signal` to this child (by its pid). */
  signal: (signal: NodeJS.Signals) => void
  /** Open WebSocket connections in the child, asked over IPC (bounded by `timeout`). */
  connections: (timeout?: number) => Promise<number>
}

/**
 * Forks test/faults/upstream-process.mjs: a `ws` echo upstream that can also stream. Cleanup
 * resumes it if stopped, then SIGKILLs it and waits (bounded) for its exit.
 */
export async function startUpstreamProcess(): Promise<UpstreamProcess> {
  const child = fork(UPSTREAM_SCRIPT, [], {
    execArgv: [],
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
      child.kill('SIGKILL')
    }
    await withTimeout(exited, 1_500, `exit of upstream process ${child.pid}`)
  })
  child.on('error', () => {})

  const port = await withTimeout(new Promise<number>((resolve, reject) => {
    child.on('message', (message: { type?: string, port?: number }) => {
      if (message?.type === 'listening') resolve(message.port!)
    })
    child.once('exit', code => reject(new Error(`Upstream process exited (${code}) before listening`)))
  }), 5_000, 'upstream process listening')

  let nextId = 0
  return {
    url: `ws://127.0.0.1:${port}`,
    child,
    exited,
    signal: (signal) => {
      if (alive() && child.pid !== undefined) process.kill(child.pid, signal)
    },
    connections: (timeout = 1_000) => {
      const id = ++nextId
      return withTimeout(new Promise<number>((resolve) => {
        const onMessage = (message: { type?: string, id?: number, connections?: number }) => {
          if (message?.type !== 'count' || message.id !== id) return
          child.off('message', onMessage)
          resolve(message.connections!)
        }
        child.on('message', onMessage)
        child.send({ type: 'count', id })
      }), timeout, 'connection count of the upstream process')
    },
  }
}

// --- frames by hand (RFC 6455 §5.2) ------------------------------------------------------------

export const OPCODE = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xA } as const

export interface Frame {
  fin: boolean
  /** The three RSV bits, as 0-7 (RSV1 = 4). */
  rsv: number
  opcode: number
  masked: boolean
  /** Unmasked payload. */
  payload: Buffer
}

export interface EncodeOptions {
  fin?: boolean
  /** RSV bits as 0-7 (RSV1 = 4, RSV2 = 2, RSV3 = 1). */
  rsv?: number
  /** Masking key (4 bytes); `true` picks a random one; omitted or `false`: unmasked. */
  mask?: Buffer | boolean
}

/** One frame, written exactly as told (valid or not). */
export function encodeFrame(opcode: number, payload: Buffer | string = Buffer.alloc(0), options: EncodeOptions = {}): Buffer {
  const { fin = true, rsv = 0 } = options
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload
  const key = options.mask === true ? randomBytes(4) : options.mask || undefined
  const length = body.length
  const lengthBytes = length < 126 ? 0 : length < 65_536 ? 2 : 8
  const head = Buffer.alloc(2 + lengthBytes + (key ? 4 : 0))
  head[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
  head[1] = (key ? 0x80 : 0) | (lengthBytes === 0 ? length : lengthBytes === 2 ? 126 : 127)
  if (lengthBytes === 2) head.writeUInt16BE(length, 2)
  if (lengthBytes === 8) head.writeBigUInt64BE(BigInt(length), 2)
  if (!key) return Buffer.concat([head, body])
  key.copy(head, 2 + lengthBytes)
  const masked = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) masked[i] = body[i]! ^ key[i & 3]!
  return Buffer.concat([head, masked])
}

/** A close frame payload: 2-byte code and UTF-8 reason. */
export function closePayload(code: number, reason = ''): Buffer {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason))
  payload.writeUInt16BE(code, 0)
  payload.write(reason, 2)
  return payload
}

/** Cuts a byte stream into frames (masked or not), whatever its chunking. */
export class FrameReader {
  private chunks: Buffer[] = []
  private length = 0
  private need = 2

  constructor(private readonly onFrame: (frame: Frame) => void) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk)
    this.length += chunk.length
    while (this.length >= this.need) {
      const data = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.length)
      this.chunks = [data]
      const masked = (data[1]! & 0x80) !== 0
      const code = data[1]! & 0x7F
      const headerLength = 2 + (code === 126 ? 2 : code === 127 ? 8 : 0) + (masked ? 4 : 0)
      if (data.length < headerLength) {
        this.need = headerLength
        continue
      }
      const payloadLength = code === 126 ? data.readUInt16BE(2) : code === 127 ? Number(data.readBigUInt64BE(2)) : code
      const total = headerLength + payloadLength
      if (data.length < total) {
        this.need = total
        continue
      }
      const payload = Buffer.from(data.subarray(headerLength, total))
      if (masked) {
        const key = data.subarray(headerLength - 4, headerLength)
        for (let i = 0; i < payload.length; i++) payload[i]! ^= key[i & 3]!
      }
      this.chunks = [data.subarray(total)]
      this.length = data.length - total
      this.need = 2
      this.onFrame({ fin: (data[0]! & 0x80) !== 0, rsv: (data[0]! >> 4) & 7, opcode: data[0]! & 0x0F, masked, payload })
    }
  }
}

/** `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2). */
export function acceptKey(key: string): string {
  return createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')
}

// --- a raw client ------------------------------------------------------------------------------

export interface RawClient {
  readonly socket: Socket
  /** Every frame received, in order. */
  readonly frames: Frame[]
  /** The close frame received, if any (`code` undefined for an empty one). */
  readonly closeFrame: { code: number | undefined, reason: string } | undefined
  /** Resolves once the TCP connection is closed. */
  readonly closed: Promise<void>
  readonly isClosed: boolean
  /** While true, pings are answered only once it is set back to false (a frame is being sent). */
  holdPongs: boolean
  /** Writes raw bytes. */
  write: (bytes: Buffer) => void
  /** The next data frame not yet returned (waits up to `timeout` ms). */
  next: (timeout?: number) => Promise<Frame>
  /** Sends a close frame with `code` and waits (bounded) for the connection to close. */
  close: (code?: number) => Promise<void>
}

/**
 * A WebSocket client written by hand over `net`: completes the upgrade (checking the accept
 * key), then lets the test write any bytes. It answers pings with pongs (unless `holdPongs`)
 * and a close frame with a close frame, like a well-behaved client.
 */
export async function rawWebSocket(url: string, { timeout = 2_000 }: { timeout?: number } = {}): Promise<RawClient> {
  const target = new URL(url)
  const key = randomBytes(16).toString('base64')
  const socket = connect(Number(target.port), target.hostname)
  socket.on('error', () => {})
  track(() => { socket.destroy() })
  let isClosed = false
  const closed = new Promise<void>(resolve => socket.once('close', () => { isClosed = true; resolve() }))

  const frames: Frame[] = []
  let closeFrame: RawClient['closeFrame']
  let heldPongs: Buffer[] = []
  let holdPongs = false
  let closeSent = false
  const write = (bytes: Buffer) => { if (!socket.destroyed) socket.write(bytes) }
  const reader = new FrameReader((frame) => {
    frames.push(frame)
    if (frame.opcode === OPCODE.ping) {
      const pong = encodeFrame(OPCODE.pong, frame.payload, { mask: true })
      if (holdPongs) heldPongs.push(pong)
      else write(pong)
    }
    else if (frame.opcode === OPCODE.close && !closeFrame) {
      const code = frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : undefined
      closeFrame = { code, reason: frame.payload.subarray(2).toString('utf8') }
      if (!closeSent) write(encodeFrame(OPCODE.close, code === undefined ? Buffer.alloc(0) : closePayload(code), { mask: true }))
      closeSent = true
      socket.end()
    }
  })

  await withTimeout(new Promise<void>((resolve, reject) => {
    let head = Buffer.alloc(0)
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end === -1) return
      socket.off('data', onData)
      const lines = head.subarray(0, end).toString('latin1').split('\r\n')
      const accept = lines.find(line => /^sec-websocket-accept:/i.test(line))?.split(':')[1]?.trim()
      if (!lines[0]!.startsWith('HTTP/1.1 101')) return reject(new Error(`Upgrade answered ${JSON.stringify(lines[0])}`))
      if (accept !== acceptKey(key)) return reject(new Error(`Bad Sec-WebSocket-Accept ${JSON.stringify(accept)}`))
      socket.on('data', (data: Buffer) => reader.push(data))
      resolve()
      const rest = head.subarray(end + 4)
      if (rest.length > 0) reader.push(rest)
    }
    socket.on('data', onData)
    socket.once('close', () => reject(new Error('Closed before the upgrade completed')))
    socket.once('connect', () => {
      socket.write([
        `GET ${target.pathname}${target.search} HTTP/1.1`,
        `Host: ${target.host}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${key}`,
        'Sec-WebSocket-Version: 13',
        '',
        '',
      ].join('\r\n'))
    })
  }), timeout, `raw upgrade of ${url}`)

  let cursor = 0
  const isData = (frame: Frame) => frame.opcode < 0x8
  return {
    socket,
    frames,
    get closeFrame() { return closeFrame },
    closed,
    get isClosed() { return isClosed },
    get holdPongs() { return holdPongs },
    set holdPongs(value: boolean) {
      holdPongs = value
      if (!value) {
        const pongs = heldPongs
        heldPongs = []
        for (const pong of pongs) write(pong)
      }
    },
    write,
    next: async (ms = 2_000) => {
      const data = () => frames.filter(isData)
      await waitFor(() => data().length > cursor || closeFrame !== undefined || isClosed, { timeout: ms, label: `raw frame #${cursor + 1}` })
      const frame = data()[cursor]
      if (!frame) throw new Error(`Connection closed (${closeFrame?.code ?? 'no close frame'}) while waiting for frame #${cursor + 1}`)
      cursor++
      return frame
    },
    close: (code = 1000) => {
      if (!closeSent) write(encodeFrame(OPCODE.close, closePayload(code), { mask: true }))
      closeSent = true
      return withTimeout(closed, 2_000, `close of ${url}`)
    },
  }
}

// --- a raw upstream ----------------------------------------------------------------------------

export interface RawUpstream {
  /** `ws://127.0.0.1:<port>` */
  readonly url: string
  /** Open TCP connections. */
  readonly sockets: number
  /** Connections whose handshake this server answered. */
  readonly accepted: number
  /** Codes of the close frames received from the proxy (`undefined`: empty close frame). */
  readonly closeCodes: Array<number | undefined>
  close: () => Promise<void>
}

/**
 * A WebSocket upstream written by hand over `net`: answers the handshake itself (computing
 * `Sec-WebSocket-Accept`), echoes text frames unmasked, answers pings and close frames, and on
 * the text frame `bad` writes `badFrame` as is.
 */
export async function startRawUpstream(badFrame: Buffer): Promise<RawUpstream> {
  const sockets = new Set<Socket>()
  const closeCodes: Array<number | undefined> = []
  let accepted = 0
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
    let head = Buffer.alloc(0)
    let closing = false
    const reader = new FrameReader((frame) => {
      if (closing) return
      if (frame.opcode === OPCODE.text && frame.payload.toString() === 'bad') socket.write(badFrame)
      else if (frame.opcode === OPCODE.text || frame.opcode === OPCODE.binary) socket.write(encodeFrame(frame.opcode, frame.payload))
      else if (frame.opcode === OPCODE.ping) socket.write(encodeFrame(OPCODE.pong, frame.payload))
      else if (frame.opcode === OPCODE.close) {
        closing = true
        const code = frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : undefined
        closeCodes.push(code)
        socket.end(encodeFrame(OPCODE.close, code === undefined ? Buffer.alloc(0) : closePayload(code)))
      }
    })
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end === -1) return
      socket.off('data', onData)
      const key = head.subarray(0, end).toString('latin1').split('\r\n')
        .find(line => /^sec-websocket-key:/i.test(line))?.split(':')[1]?.trim() ?? ''
      accepted++
      socket.write([
        'HTTP/1.1 101 Switching Protocols',
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Accept: ${acceptKey(key)}`,
        '',
        '',
      ].join('\r\n'))
      socket.on('data', (data: Buffer) => reader.push(data))
      const rest = head.subarray(end + 4)
      if (rest.length > 0) reader.push(rest)
    }
    socket.on('data', onData)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const upstream: RawUpstream = {
    url: `ws://127.0.0.1:${port}`,
    get sockets() { return sockets.size },
    get accepted() { return accepted },
    closeCodes,
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy()
      server.close(() => resolve())
    }),
  }
  track(upstream.close)
  return upstream
}

// --- a hashing upstream for large messages -----------------------------------------------------

export interface SinkUpstream {
  readonly url: string
  readonly connections: number
}

/**
 * A `ws` upstream for large messages that never echoes them: a binary message is answered with
 * the text `<sha256>:<length>`; the text `send:<n>` is answered with `n` random bytes as one
 * binary message, then the text `<sha256>:<n>` of what was sent.
 */
export async function startSinkUpstream(): Promise<SinkUpstream> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 128 * 1024 * 1024 })
  await new Promise(resolve => wss.once('listening', resolve))
  wss.on('connection', (ws) => {
    ws.on('error', () => {})
    ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary) {
        ws.send(`${sha256(data)}:${data.length}`)
        return
      }
      const match = /^send:(\d+)$/.exec(data.toString())
      if (!match) return
      const bytes = randomBytes(Number(match[1]))
      ws.send(bytes, { binary: true })
      ws.send(`${sha256(bytes)}:${bytes.length}`)
    })
  })
  track(() => new Promise<void>((resolve) => {
    for (const ws of wss.clients) ws.terminate()
    wss.close(() => resolve())
  }))
  return {
    url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}`,
    get connections() { return wss.clients.size },
  }
}

// --- process probes ----------------------------------------------------------------------------

/** Counts of `process.getActiveResourcesInfo()` by type. */
export function activeResources(): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1
  return counts
}

/**
 * A full garbage collection: `global.gc` when Node runs with `--expose-gc`, otherwise the same
 * function obtained at runtime through V8's flags. `undefined` when neither works.
 */
export function garbageCollector(): (() => void) | undefined {
  const exposed = (globalThis as { gc?: () => void }).gc
  if (typeof exposed === 'function') return exposed
  try {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as unknown
    return typeof gc === 'function' ? gc as () => void : undefined
  }
  catch {
    return undefined
  }
}
