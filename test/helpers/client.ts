/**
 * Test clients: a real `ws` client with a message queue, and a hand-written HTTP upgrade over
 * `net` that exposes the raw response (status line and every header, duplicates included).
 */
import type { Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { WebSocket } from 'ws'
import { track } from './cleanup'
import { withTimeout } from './wait'

/** A message as the client received it. */
export interface ClientMessage {
  data: Buffer
  isBinary: boolean
  /** `data` decoded as UTF-8, for convenience. */
  text: string
}

export interface CloseInfo {
  code: number
  reason: string
  /** `Date.now()` when the close event fired. */
  at: number
}

export interface TestClient {
  /** The underlying `ws` client. */
  readonly ws: WebSocket
  /** Subprotocol the server answered ('' if none). */
  readonly protocol: string
  /** Every message received so far, in order (including those already returned by `next`). */
  readonly messages: ClientMessage[]
  /** Resolves when the connection closes (never rejects). */
  readonly closed: Promise<CloseInfo>
  /** Whether the connection is open. */
  readonly isOpen: boolean
  /** Sends `data`; strings as text frames, buffers as binary frames unless `binary` says otherwise. */
  send: (data: string | Buffer | Uint8Array, binary?: boolean) => void
  /** The next message not yet returned by `next` (waits up to `timeout` ms; rejects on close). */
  next: (timeout?: number) => Promise<ClientMessage>
  /** Closes with `code`/`reason` and waits (bounded) for the close to complete. */
  close: (code?: number, reason?: string) => Promise<CloseInfo>
}

export interface ConnectOptions {
  protocols?: string | string[]
  headers?: Record<string, string>
  /** Handshake timeout in ms. @default 2000 */
  timeout?: number
}

/** Opens a `ws` client to `url` and resolves once it is open (rejects on a failed handshake). */
export async function wsConnect(url: string, options: ConnectOptions = {}): Promise<TestClient> {
  const timeout = options.timeout ?? 2_000
  const ws = new WebSocket(url, options.protocols, { headers: options.headers, handshakeTimeout: timeout })
  track(() => {
    if (ws.readyState !== WebSocket.CLOSED) ws.terminate()
  })

  const messages: ClientMessage[] = []
  let cursor = 0
  let wake: (() => void) | undefined
  ws.on('message', (data, isBinary) => {
    const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)
    messages.push({ data: buffer, isBinary, text: buffer.toString('utf8') })
    wake?.()
  })
  ws.on('error', () => {})

  let closeInfo: CloseInfo | undefined
  const closed = new Promise<CloseInfo>((resolve) => {
    ws.on('close', (code, reason) => {
      closeInfo = { code, reason: reason.toString(), at: Date.now() }
      resolve(closeInfo)
      wake?.()
    })
  })

  await withTimeout(new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('unexpected-response', (_req, res) => reject(new Error(`Handshake answered ${res.statusCode}`)))
    ws.once('error', reject)
    ws.once('close', (code) => reject(new Error(`Closed (${code}) before open`)))
  }), timeout + 500, `open ${url}`)

  const next = async (ms = 2_000): Promise<ClientMessage> => {
    const deadline = Date.now() + ms
    while (cursor >= messages.length) {
      if (closeInfo) throw new Error(`Connection closed (${closeInfo.code} ${JSON.stringify(closeInfo.reason)}) while waiting for message #${cursor + 1}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`Timed out after ${ms} ms waiting for message #${cursor + 1}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        wake = () => { clearTimeout(timer); wake = undefined; resolve() }
      })
    }
    return messages[cursor++]!
  }

  return {
    ws,
    protocol: ws.protocol,
    messages,
    closed,
    get isOpen() { return ws.readyState === WebSocket.OPEN },
    send: (data, binary) => ws.send(data, { binary: binary ?? typeof data !== 'string' }),
    next,
    close: (code, reason) => {
      ws.close(code, reason)
      return withTimeout(closed, 2_000, `close of ${url}`)
    },
  }
}

/** The raw answer to a hand-written upgrade request. */
export interface RawUpgradeResponse {
  /** e.g. `HTTP/1.1 101 Switching Protocols` */
  statusLine: string
  status: number
  /** Every response header in order, names lower-cased, duplicates kept. */
  headers: Array<[string, string]>
  /** Values of every header named `name` (case-insensitive). */
  header: (name: string) => string[]
  /** Body bytes received after the headers (only read for non-101 answers). */
  body: string
  /** The same bytes, undecoded (after a 101: what arrived with the head, e.g. a first frame). */
  bodyBytes: Buffer
  /** The TCP socket (still open after a 101; ended by `close` or `cleanup()`). */
  socket: Socket
  close: () => void
}

/**
 * Sends a hand-written WebSocket upgrade request to `url` (`ws://host:port/path`) and returns the
 * raw answer. `headers` are added to (or, with `undefined`, removed from) the standard ones.
 * For a non-101 answer the body is read until the server ends the connection.
 */
export async function rawUpgrade(
  url: string,
  headers: Record<string, string | undefined> = {},
  { timeout = 2_000, httpVersion = '1.1' }: { timeout?: number, httpVersion?: string } = {},
): Promise<RawUpgradeResponse> {
  const target = new URL(url)
  const all: Record<string, string | undefined> = {
    'Host': target.host,
    'Upgrade': 'websocket',
    'Connection': 'Upgrade',
    'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
    'Sec-WebSocket-Version': '13',
    ...headers,
  }
  const lines = [`GET ${target.pathname}${target.search} HTTP/${httpVersion}`]
  for (const [name, value] of Object.entries(all)) {
    if (value !== undefined) lines.push(`${name}: ${value}`)
  }

  const socket = connect(Number(target.port), target.hostname)
  socket.on('error', () => {})
  const close = () => { socket.destroy() }
  track(close)

  const raw = await withTimeout(new Promise<{ head: string, rest: Buffer }>((resolve, reject) => {
    let received = Buffer.alloc(0)
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      const end = received.indexOf('\r\n\r\n')
      if (end === -1) return
      socket.off('data', onData)
      socket.pause()
      resolve({ head: received.subarray(0, end).toString('latin1'), rest: received.subarray(end + 4) })
    }
    socket.on('data', onData)
    socket.once('close', () => reject(new Error(`Connection closed before a response: ${JSON.stringify(received.toString('latin1'))}`)))
    socket.once('connect', () => socket.write(`${lines.join('\r\n')}\r\n\r\n`))
  }), timeout, `response to the upgrade of ${url}`)

  const [statusLine = '', ...headerLines] = raw.head.split('\r\n')
  const parsed = headerLines.map((line): [string, string] => {
    const colon = line.indexOf(':')
    return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]
  })
  const status = Number(statusLine.split(' ')[1])

  let body = raw.rest
  if (status !== 101) {
    body = await withTimeout(new Promise<Buffer>((resolve) => {
      const chunks = [raw.rest]
      socket.on('data', chunk => chunks.push(chunk))
      socket.once('close', () => resolve(Buffer.concat(chunks)))
      socket.once('end', () => resolve(Buffer.concat(chunks)))
      socket.resume()
    }), timeout, `end of the ${status} answer of ${url}`)
  }

  return {
    statusLine,
    status,
    headers: parsed,
    header: name => parsed.filter(([key]) => key === name.toLowerCase()).map(([, value]) => value),
    body: body.toString('utf8'),
    bodyBytes: body,
    socket,
    close,
  }
}
