/**
 * The raw upstream handshake (src/core/dial.ts): with `ws`'s own class the proxy dials with
 * `net`/`tls`, writes the upgrade request itself and checks the 101 as strictly as ws's client.
 * Upstreams here are scripted TCP servers that answer exactly the bytes a case needs (a wrong
 * accept, an unrequested subprotocol or extension, a status with a body, a 101 in pieces with a
 * frame behind it), plus a real `ws` server behind TLS with a self-signed certificate. Which
 * client dialled is told by the request itself: the raw handshake sends `Host` first, ws's
 * `http.ClientRequest` sends it last.
 */
import type { AddressInfo, Server, Socket } from 'node:net'
import type { WebSocketConstructor, WebSocketProxyConnectionRecord, WebSocketProxyOptions } from '../../src/core/types'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer as createHttpsServer } from 'node:https'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { WebSocketServer } from 'ws'
import { CROSSWS_LINES, WsWebSocket, cleanup, rawUpgrade, startUpstream, track, usesWsCtor, waitFor, withTimeout, wsConnect } from '../helpers'
import { expectEcho, proxied } from './setup'

afterEach(() => cleanup())

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
const accept = (key: string) => createHash('sha1').update(key + GUID).digest('base64')

interface Scripted {
  url: string
  /** Every request head received, as text. */
  requests: string[]
}

/**
 * A TCP server that reads one request head per connection and lets `answer` write whatever it
 * wants (the request's Sec-WebSocket-Key and head are given).
 */
async function startScripted(answer: (socket: Socket, key: string, head: string) => void): Promise<Scripted> {
  const requests: string[] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let buffered = ''
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('latin1')
      const end = buffered.indexOf('\r\n\r\n')
      if (end === -1) return
      socket.off('data', onData)
      const head = buffered.slice(0, end)
      requests.push(head)
      const key = /^sec-websocket-key: *(.+)$/im.exec(head)?.[1]?.trim() ?? ''
      answer(socket, key, head)
    }
    socket.on('data', onData)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  track(() => new Promise<void>((resolve) => {
    for (const socket of sockets) socket.destroy()
    server.close(() => resolve())
  }))
  return { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`, requests }
}

/** An unmasked server text frame (payload under 126 bytes). */
function textFrame(text: string): Buffer {
  const payload = Buffer.from(text)
  return Buffer.concat([Buffer.from([0x81, payload.length]), payload])
}

/** The names of a request head's header lines, in order. */
function headerNames(head: string): string[] {
  return head.split('\r\n').slice(1).map(line => line.slice(0, line.indexOf(':')).toLowerCase())
}

/** A proxy whose connection endings are recorded; resolves the first ending. */
async function proxiedWithEndings(line: '0.3' | '0.4', options: WebSocketProxyOptions) {
  const endings: WebSocketProxyConnectionRecord[] = []
  const { proxy, server } = await proxied(line, { ...options, onConnectionClose: info => endings.push(info) })
  return { proxy, server, endings }
}

describe.runIf(usesWsCtor).each(CROSSWS_LINES)('raw upstream handshake (crossws %s)', (line) => {
  it('dials with the raw handshake by default and relays both ways', async () => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, { target: `${upstream.url}/echo?q=1`, headers: { 'x-user': 'ada' } })
    const client = await wsConnect(`${server.url}/ws`)
    await expectEcho(client, 'hello')
    const headers = upstream.lastHandshakeHeaders!
    expect(headers['x-user']).toBe('ada')
    expect(headers.host).toBe(new URL(upstream.url).host)
    expect(headers['sec-websocket-version']).toBe('13')
    expect(upstream.handshakes.at(-1)!.url).toBe('/echo?q=1')
  })

  it('sends Host first (the raw request), with the headers and the offer', async () => {
    const scripted = await startScripted((socket, key, head) => {
      const protocol = /^sec-websocket-protocol: *(.+)$/im.exec(head)?.[1]?.split(',')[0]?.trim()
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(key)}\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`)
      socket.write(textFrame('greeting'))
    })
    const { server } = await proxied(line, { target: scripted.url, headers: { 'x-a': '1' } })
    const client = await wsConnect(`${server.url}/ws`, { protocols: ['chat.v2', 'chat.v1'] })
    expect((await client.next()).text).toBe('greeting')
    const head = scripted.requests[0]!
    expect(head.split('\r\n')[0]).toBe('GET / HTTP/1.1')
    expect(headerNames(head)[0]).toBe('host')
    expect(head).toMatch(/\r\nx-a: 1\r\n/)
    expect(head).toMatch(/\r\nSec-WebSocket-Protocol: chat\.v2,chat\.v1\r\n/)
    expect(head).not.toMatch(/sec-websocket-extensions/i)
    client.close()
  })

  it('reads a 101 split across TCP segments with a frame in the same segment as its end', async () => {
    const scripted = await startScripted((socket, key) => {
      socket.setNoDelay(true)
      const head = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(key)}\r\n\r\n`
      socket.write(head.slice(0, 30))
      setTimeout(() => socket.write(head.slice(30, -2)), 20)
      // The blank line that ends the head, two frames, in one write.
      setTimeout(() => socket.write(Buffer.concat([Buffer.from('\r\n'), textFrame('first'), textFrame('second')])), 40)
    })
    const { server } = await proxied(line, { target: scripted.url })
    const client = await wsConnect(`${server.url}/ws`)
    expect((await client.next()).text).toBe('first')
    expect((await client.next()).text).toBe('second')
    client.close()
  })

  const refusals: Array<[string, (key: string) => string, string]> = [
    ['a wrong Sec-WebSocket-Accept', () => `Sec-WebSocket-Accept: ${accept('x')}\r\n`, 'Invalid Sec-WebSocket-Accept header'],
    ['an unrequested subprotocol', key => `Sec-WebSocket-Accept: ${accept(key)}\r\nSec-WebSocket-Protocol: chat\r\n`, 'Server sent a subprotocol but none was requested'],
    ['an unrequested extension', key => `Sec-WebSocket-Accept: ${accept(key)}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n`, 'Server sent a Sec-WebSocket-Extensions header but no extension was requested'],
  ]
  for (const [name, extra, message] of refusals) {
    it(`fails the dial on ${name}: the client gets 1011, the upstream socket is dropped`, async () => {
      let upstreamClosed = false
      const scripted = await startScripted((socket, key) => {
        socket.on('close', () => { upstreamClosed = true })
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${extra(key)}\r\n`)
        socket.write(textFrame('must not arrive'))
      })
      const { server, endings } = await proxiedWithEndings(line, { target: scripted.url })
      const client = await wsConnect(`${server.url}/ws`)
      const closed = await withTimeout(client.closed, 2_000, 'client close')
      expect(closed.code).toBe(1011)
      expect(client.messages).toEqual([])
      await waitFor(() => endings.length === 1 && upstreamClosed, { label: 'ending recorded and upstream socket closed' })
      expect(endings[0]!.cause).toBe('upstream-error')
      expect((endings[0]!.error as Error).message).toBe(message)
    })
  }

  it('fails the dial on a subprotocol that was not offered', async () => {
    const scripted = await startScripted((socket, key) => {
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(key)}\r\nSec-WebSocket-Protocol: other\r\n\r\n`)
    })
    const { server, endings } = await proxiedWithEndings(line, { target: scripted.url })
    const client = await wsConnect(`${server.url}/ws`, { protocols: ['chat'] })
    expect((await withTimeout(client.closed, 2_000, 'client close')).code).toBe(1011)
    await waitFor(() => endings.length === 1, { label: 'ending recorded' })
    expect((endings[0]!.error as Error).message).toBe('Server sent an invalid subprotocol')
  })

  it('passes a 403 with a body through to an upstream-first client, and does not retry it', async () => {
    const scripted = await startScripted((socket) => {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nforbidden')
    })
    const second = await startUpstream()
    const { server } = await proxied(line, { target: [scripted.url, second.url], balance: 'round-robin', upstreamFirst: true })
    const answer = await rawUpgrade(`${server.url}/ws`)
    expect(answer.status).toBe(403)
    expect(scripted.requests).toHaveLength(1)
    expect(second.handshakes).toHaveLength(0)
  })

  it('fails over on a 503 with a body', async () => {
    const scripted = await startScripted((socket) => {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy')
    })
    const second = await startUpstream()
    const { server } = await proxied(line, { target: [scripted.url, second.url], balance: 'round-robin' })
    const client = await wsConnect(`${server.url}/ws`)
    await expectEcho(client, 'after failover')
    expect(scripted.requests).toHaveLength(1)
  })

  it('refuses a header value with a line break before dialling (no header injection)', async () => {
    const upstream = await startUpstream()
    const { server, endings } = await proxiedWithEndings(line, { target: upstream.url, headers: { 'x-evil': 'a\r\nx-injected: 1' } })
    const client = await wsConnect(`${server.url}/ws`)
    expect((await withTimeout(client.closed, 2_000, 'client close')).code).toBe(1011)
    await waitFor(() => endings.length === 1, { label: 'ending recorded' })
    expect(endings[0]!.cause).toBe('setup-failed')
    expect(upstream.handshakes).toHaveLength(0)
  })

  it('an upstream that closes before answering fails the dial with ECONNRESET', async () => {
    const scripted = await startScripted(socket => socket.destroy())
    const { server, endings } = await proxiedWithEndings(line, { target: scripted.url })
    const client = await wsConnect(`${server.url}/ws`)
    expect((await withTimeout(client.closed, 2_000, 'client close')).code).toBe(1011)
    await waitFor(() => endings.length === 1, { label: 'ending recorded' })
    expect((endings[0]!.error as Error & { code?: string }).code).toBe('ECONNRESET')
  })

  it('falls back to ws\'s client for a subclass, for other webSocketOptions and with NITRO_WS_PROXY_INTERNALS=0', async () => {
    const scripted = await startScripted((socket, key) => {
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(key)}\r\n\r\n`)
      socket.write(textFrame('hi'))
    })
    class Sub extends (WsWebSocket as unknown as new (...args: any[]) => object) {}
    const cases: Array<() => WebSocketProxyOptions> = [
      () => ({ target: scripted.url, WebSocket: Sub as unknown as WebSocketConstructor }),
      () => ({ target: scripted.url, webSocketOptions: { handshakeTimeout: 5_000 } }),
    ]
    for (const options of cases) {
      const { server } = await proxied(line, options())
      const client = await wsConnect(`${server.url}/ws`)
      expect((await client.next()).text).toBe('hi')
      client.close()
    }
    const before = process.env.NITRO_WS_PROXY_INTERNALS
    process.env.NITRO_WS_PROXY_INTERNALS = '0'
    try {
      const { server } = await proxied(line, { target: scripted.url })
      const client = await wsConnect(`${server.url}/ws`)
      expect((await client.next()).text).toBe('hi')
      client.close()
    }
    finally {
      if (before === undefined) delete process.env.NITRO_WS_PROXY_INTERNALS
      else process.env.NITRO_WS_PROXY_INTERNALS = before
      // The switch is read when a proxy is created: one more restores it for the next tests.
      await proxied(line, { target: scripted.url })
    }
    // ws's http.ClientRequest sends Host last; the raw handshake sends it first.
    expect(scripted.requests.map(head => headerNames(head).at(-1))).toEqual(['host', 'host', 'host'])
  })
})

describe.runIf(usesWsCtor)('raw upstream handshake over TLS (self-signed certificate)', () => {
  let dir: string
  let cert: Buffer
  let key: Buffer
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'nitro-ws-proxy-tls-'))
    // A throwaway certificate for 127.0.0.1, made at setup: nothing secret is committed.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' })
    cert = readFileSync(join(dir, 'cert.pem'))
    key = readFileSync(join(dir, 'key.pem'))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  async function startTlsUpstream() {
    const https = createHttpsServer({ cert, key })
    const wss = new WebSocketServer({ server: https, perMessageDeflate: false })
    const alpn: Array<string | false | null> = []
    https.on('secureConnection', socket => alpn.push(socket.alpnProtocol))
    wss.on('connection', ws => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
    await new Promise<void>(resolve => https.listen(0, '127.0.0.1', resolve))
    track(() => new Promise<void>((resolve) => {
      wss.close()
      https.closeAllConnections()
      https.close(() => resolve())
    }))
    return { url: `wss://127.0.0.1:${(https.address() as AddressInfo).port}`, alpn }
  }

  it('trusts the certificate given as `ca` and relays', async () => {
    const upstream = await startTlsUpstream()
    const { server } = await proxied('0.3', { target: upstream.url, webSocketOptions: { ca: cert } })
    const client = await wsConnect(`${server.url}/ws`)
    await expectEcho(client, 'over tls')
    expect(upstream.alpn).toEqual(['http/1.1'])
  })

  it('refuses the self-signed certificate by default', async () => {
    const upstream = await startTlsUpstream()
    const { server, endings } = await proxiedWithEndings('0.3', { target: upstream.url })
    const client = await wsConnect(`${server.url}/ws`)
    expect((await withTimeout(client.closed, 3_000, 'client close')).code).toBe(1011)
    await waitFor(() => endings.length === 1, { label: 'ending recorded' })
    expect((endings[0]!.error as Error & { code?: string }).code).toBe('DEPTH_ZERO_SELF_SIGNED_CERT')
  })

  it('accepts it with rejectUnauthorized: false', async () => {
    const upstream = await startTlsUpstream()
    const { server } = await proxied('0.3', { target: upstream.url, webSocketOptions: { rejectUnauthorized: false } })
    const client = await wsConnect(`${server.url}/ws`)
    await expectEcho(client, 'unverified')
  })
})

describe('the fence around the adoption (src/core/fence.ts)', () => {
  it('adopts ws\'s own class only, and gives up for good on an instance of unknown layout', async () => {
    const { canAdoptClientSocket, createPendingClient, readInternalsSwitch } = await import('../../src/core/fence')
    readInternalsSwitch()
    expect(canAdoptClientSocket(WsWebSocket)).toBe(true)
    class Sub extends (WsWebSocket as unknown as new (...args: any[]) => object) {}
    expect(canAdoptClientSocket(Sub)).toBe(false)
    expect(canAdoptClientSocket(globalThis.WebSocket)).toBe(false)

    // Looks like ws's class (its own methods), but its instances are not laid out like ws 8's.
    class LookAlike {
      static CONNECTING = 0
      _isServer = true
      _socket = null
      _readyState = 0
      setSocket() {}
      emitClose() {}
      terminate() {}
      pause() {}
      on() {}
    }
    expect(canAdoptClientSocket(LookAlike)).toBe(true)
    expect(createPendingClient(LookAlike as unknown as new () => unknown, 'ws://127.0.0.1:1/')).toBeUndefined()
    expect(canAdoptClientSocket(LookAlike)).toBe(false)

    const pending = createPendingClient(WsWebSocket as unknown as new () => unknown, 'ws://127.0.0.1:1/x')!
    expect(pending.readyState).toBe(0)
    expect((pending as unknown as { url: string }).url).toBe('ws://127.0.0.1:1/x')
    expect((pending as unknown as { _isServer: boolean })._isServer).toBe(false) // masks its frames
  })
})
