/**
 * The upstream handshake without `http.ClientRequest`: one `net.connect` / `tls.connect`, one
 * hand-written HTTP/1.1 upgrade request, a strict check of the 101, then the socket goes to `ws`
 * (through the fence) exactly as ws's own client hands it over after its upgrade.
 *
 * Why: opening a connection is where the proxy spends most of its CPU next to nginx, and ws's
 * client builds an HTTP client request, an agent lookup, an HTTP parser and a response object per
 * dial only to read one status line and four headers. The request sent is the one ws sends
 * (Host, Sec-WebSocket-Key/Version/Protocol, Connection, Upgrade and the proxy's headers); the
 * answer is held to ws's own rules (status, Upgrade, Sec-WebSocket-Accept, a subprotocol among
 * those offered, no extension) and a non-101 status surfaces as ws's `unexpected-response`, so
 * failover, upstream-first statuses and "4xx is not retried" do not change.
 *
 * Used only when nothing needs ws's client: `ws`'s own `WebSocket` class (no subclass), no
 * `webSocketOptions` other than TLS trust settings, `ws:`/`wss:` URLs without credentials, a
 * runtime with `process.getBuiltinModule` (Node >= 20.16), and the fence on
 * (`NITRO_WS_PROXY_INTERNALS=0` turns it off). Otherwise {@link dialRaw} returns `undefined`
 * and the caller dials with ws's client as before.
 */
import type { PendingClient } from './fence'
import { canAdoptClientSocket, completePendingClient, createPendingClient, failPendingClient, setPendingStream } from './fence'

interface NodeModules {
  net: typeof import('node:net')
  tls: typeof import('node:tls')
  crypto: typeof import('node:crypto')
  http: typeof import('node:http')
}

let modules: NodeModules | null | undefined

/** Node's modules, loaded on first use without a static import (the core imports none). */
function nodeModules(): NodeModules | null {
  if (modules !== undefined) return modules
  const getBuiltin = (globalThis as { process?: { getBuiltinModule?: (id: string) => any } }).process?.getBuiltinModule
  try {
    modules = typeof getBuiltin === 'function'
      ? { net: getBuiltin('node:net'), tls: getBuiltin('node:tls'), crypto: getBuiltin('node:crypto'), http: getBuiltin('node:http') }
      : null
    const m = modules as Record<string, Record<string, unknown> | undefined> | null
    if (m && !(typeof m.net?.connect === 'function' && typeof m.tls?.connect === 'function'
      && typeof m.crypto?.createHash === 'function' && typeof m.http?.validateHeaderValue === 'function')) modules = null
  }
  catch {
    modules = null
  }
  return modules
}

/** `webSocketOptions` keys the raw handshake applies itself (TLS trust); any other key needs ws's client. */
const TLS_KEYS = new Set(['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername', 'checkServerIdentity', 'minVersion', 'maxVersion', 'ciphers'])

/** Headers the handshake itself sets: a user value for these is replaced, as ws's client does. */
const OWN_HEADERS = new Set(['sec-websocket-key', 'sec-websocket-version', 'connection', 'upgrade'])

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
/** Handshake answers larger than this fail (Node's default header limit is 16 KiB). */
const MAX_HEAD = 16 * 1024
const SUBPROTOCOL = /^[!#$%&'*+\-.0-9A-Z^_`|a-z~]+$/

// Keys: 16 random bytes each, drawn from a pool filled 64 keys at a time.
const KEY_POOL_KEYS = 64
let keyPool: Buffer | undefined
let keyOffset = KEY_POOL_KEYS * 16

function nextKey(crypto: NodeModules['crypto']): string {
  if (keyOffset === KEY_POOL_KEYS * 16) {
    keyPool ??= Buffer.allocUnsafe(KEY_POOL_KEYS * 16)
    crypto.randomFillSync(keyPool)
    keyOffset = 0
  }
  keyOffset += 16
  return keyPool!.toString('base64', keyOffset - 16, keyOffset)
}

function acceptFor(crypto: NodeModules['crypto'], key: string): string {
  const hash = (crypto as { hash?: (algorithm: string, data: string, encoding: string) => string }).hash
  return typeof hash === 'function' ? hash('sha1', key + GUID, 'base64') : crypto.createHash('sha1').update(key + GUID).digest('base64')
}

/**
 * Whether `options` (the constructor's third argument) asks for nothing the raw handshake does
 * not do itself.
 */
function rawCapable(options: Record<string, unknown> | undefined): boolean {
  if (!options) return true
  for (const key in options) {
    if (key === 'headers') continue
    if (key === 'perMessageDeflate') {
      if (options[key] === false) continue
      return false
    }
    if (!TLS_KEYS.has(key)) return false
  }
  return true
}

/** The upgrade request's bytes; throws (as Node's HTTP client does) on an invalid header. */
function buildRequest(http: NodeModules['http'], url: URL, key: string, protocols: string[] | undefined, headers: Record<string, string> | undefined): string {
  let host = url.host
  let lines = ''
  if (headers) {
    for (const name in headers) {
      const lower = name.toLowerCase()
      if (OWN_HEADERS.has(lower) || (protocols && lower === 'sec-websocket-protocol')) continue
      const value = headers[name]!
      http.validateHeaderName(name)
      http.validateHeaderValue(name, value)
      if (lower === 'host') host = value
      else lines += `${name}: ${value}\r\n`
    }
  }
  if (protocols) {
    const seen = new Set<string>()
    for (const protocol of protocols) {
      if (typeof protocol !== 'string' || !SUBPROTOCOL.test(protocol) || seen.has(protocol)) {
        throw new SyntaxError('An invalid or duplicated subprotocol was specified')
      }
      seen.add(protocol)
    }
    lines += `Sec-WebSocket-Protocol: ${protocols.join(',')}\r\n`
  }
  return `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${host}\r\n${lines}`
    + `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`
}

/** The response head: status and lower-cased headers (repeated headers joined with ", "), or an error message. */
function parseHead(text: string): { status: number, headers: Record<string, string> } | string {
  const lines = text.split('\r\n')
  const match = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0]!)
  if (!match) return 'Parse Error: Invalid response status'
  const headers: Record<string, string> = Object.create(null)
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!
    const colon = line.indexOf(':')
    // No colon, an empty name, whitespace before the colon or obsolete line folding: malformed.
    if (colon <= 0 || line.charCodeAt(0) === 32 || line.charCodeAt(0) === 9 || line.charCodeAt(colon - 1) === 32) return 'Parse Error: Invalid header'
    const name = line.slice(0, colon).toLowerCase()
    const value = line.slice(colon + 1).trim()
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value
  }
  return { status: Number(match[1]), headers }
}

/** Where a dialling socket keeps its handshake: the listeners are shared, no closure per dial. */
const kState = Symbol('nitro-ws-proxy.handshake')

interface HandshakeState {
  ws: PendingClient
  socket: any
  key: string
  protocols: string[] | undefined
  crypto: NodeModules['crypto']
  chunks: Buffer[] | undefined
  size: number
}

function onConnectError(this: { [kState]: HandshakeState }, error: Error): void {
  const s = this[kState]
  if (s.ws.readyState !== 0) return // ended by close()/terminate(): they report it
  fail(s, error)
}

function onEarlyEnd(this: { [kState]: HandshakeState }): void {
  const s = this[kState]
  if (s.ws.readyState !== 0) return
  const error = new Error('socket hang up') as Error & { code?: string }
  error.code = 'ECONNRESET'
  fail(s, error)
}

function fail(s: HandshakeState, error: Error): void {
  detach(s)
  s.socket.destroy()
  failPendingClient(s.ws, error)
}

function detach(s: HandshakeState): void {
  const socket = s.socket
  socket.removeListener('data', onHandshakeData)
  socket.removeListener('error', onConnectError)
  socket.removeListener('end', onEarlyEnd)
  socket.removeListener('close', onEarlyEnd)
  socket[kState] = undefined
}

function onHandshakeData(this: { [kState]: HandshakeState }, chunk: Buffer): void {
  const s = this[kState]
  if (s.ws.readyState !== 0) return
  let data = chunk
  if (s.chunks) {
    s.chunks.push(chunk)
    data = Buffer.concat(s.chunks)
  }
  // The head ends at the first CRLF CRLF; search from a little before the new bytes.
  const end = data.indexOf('\r\n\r\n', Math.max(0, s.size - 3), 'latin1')
  s.size = data.length
  if (end === -1) {
    if (data.length > MAX_HEAD) return fail(s, new Error('Parse Error: Header overflow'))
    s.chunks ??= [chunk]
    return
  }
  s.chunks = undefined
  if (end > MAX_HEAD) return fail(s, new Error('Parse Error: Header overflow'))
  const parsed = parseHead(data.toString('latin1', 0, end))
  if (typeof parsed === 'string') return fail(s, new Error(parsed))
  const ws = s.ws
  if (parsed.status !== 101) {
    detach(s)
    // As ws: the status goes to `unexpected-response`, whose listener ends the handshake.
    if (!ws.emit('unexpected-response', null, { statusCode: parsed.status, headers: parsed.headers })) {
      fail(s, new Error(`Unexpected server response: ${parsed.status}`))
    }
    return
  }
  const headers = parsed.headers
  const upgrade = headers.upgrade
  if (upgrade === undefined || upgrade.toLowerCase() !== 'websocket') return fail(s, new Error('Invalid Upgrade header'))
  if (headers['sec-websocket-accept'] !== acceptFor(s.crypto, s.key)) return fail(s, new Error('Invalid Sec-WebSocket-Accept header'))
  const protocol = headers['sec-websocket-protocol']
  if (protocol !== undefined) {
    if (!s.protocols) return fail(s, new Error('Server sent a subprotocol but none was requested'))
    if (!s.protocols.includes(protocol)) return fail(s, new Error('Server sent an invalid subprotocol'))
  }
  else if (s.protocols) {
    return fail(s, new Error('Server sent no subprotocol'))
  }
  if (headers['sec-websocket-extensions'] !== undefined) {
    return fail(s, new Error('Server sent a Sec-WebSocket-Extensions header but no extension was requested'))
  }
  const socket = s.socket
  detach(s)
  // Frames the upstream sent right behind its 101 (same segment) go to ws first.
  completePendingClient(ws, socket, data.subarray(end + 4), protocol ?? '')
}

/**
 * Dial `url` with a raw handshake and return the `ws` client (`CONNECTING`; it emits `open`,
 * `unexpected-response`, `error` and `close` as ws's own client does), or `undefined` when this
 * dial needs ws's client (see the module comment).
 */
export function dialRaw(
  Ctor: unknown,
  url: URL,
  protocols: string[] | undefined,
  options: Record<string, unknown> | undefined,
): PendingClient | undefined {
  const secure = url.protocol === 'wss:'
  if ((!secure && url.protocol !== 'ws:') || url.username || url.password || url.hash) return undefined
  if (!rawCapable(options) || !canAdoptClientSocket(Ctor)) return undefined
  const m = nodeModules()
  if (!m) return undefined
  const key = nextKey(m.crypto)
  // Built (and validated) before anything is dialled: a bad header throws here, as before.
  const request = buildRequest(m.http, url, key, protocols, options?.headers as Record<string, string> | undefined)
  const ws = createPendingClient(Ctor as new (...args: any[]) => unknown, url.href)
  if (!ws) return undefined
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  const port = Number(url.port) || (secure ? 443 : 80)
  let socket: any
  if (secure) {
    const tlsOptions: Record<string, unknown> = { host, port, ALPNProtocols: ['http/1.1'] }
    if (options) for (const name in options) if (TLS_KEYS.has(name)) tlsOptions[name] = options[name]
    if (!tlsOptions.servername && tlsOptions.servername !== '') tlsOptions.servername = m.net.isIP(host) ? '' : host
    socket = m.tls.connect(tlsOptions as import('node:tls').ConnectionOptions)
  }
  else {
    socket = m.net.connect({ host, port })
  }
  const state: HandshakeState = { ws, socket, key, protocols, crypto: m.crypto, chunks: undefined, size: 0 }
  socket[kState] = state
  socket.on('data', onHandshakeData)
  socket.on('error', onConnectError)
  socket.on('end', onEarlyEnd)
  socket.on('close', onEarlyEnd)
  setPendingStream(ws, socket)
  // Queued until the socket connects: one write.
  socket.write(request, 'latin1')
  return ws
}
