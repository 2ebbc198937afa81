/**
 * End to end on every runtime the module claims: the fixture test/fixtures/runtime-app built
 * with the `node-server`, `node-cluster`, `bun` and `deno-server` presets, each build run with
 * its real runtime (Node 20, Bun 1, Deno 2; see ./harness.ts), a real `ws` upstream in this
 * process, real `ws` clients, everything on 127.0.0.1.
 *
 * The fixture's rules (targets overridden by env, as in production):
 * - `'/live/**'`    → `<upstream>/echo/**`                             (name `live`)
 * - `'/private/**'` → `<upstream>/private/**`, `auth: { session: true }` (name `private`)
 * and a `ws-proxy:auth` plugin that adds `x-user-id` from the session's user.
 */
import { randomBytes } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { WebSocket } from 'ws'
import { generatePassword } from '../auth/helpers'
import { cleanup, type ClientMessage, rawUpgrade, sleep, startUpstream, type TestClient, type Upstream, wsConnect } from '../helpers'
import { withTimeout } from '../helpers/wait'
import { buildPreset, isAlive, killAllServers, PRESETS, type Preset, type RuntimeServer, startRuntime, upgradeHead } from './harness'

/** Session password of the `/private/**` rule: generated per run, never committed. */
const sessionPassword = generatePassword()
const user = { id: 7, name: 'Zoë' }

/** Clients of the concurrency test, and messages each one sends. */
const CROWD = 200
const CROWD_MESSAGES = 5
/** Clients of the message-order test, and the sequence-numbered messages each sends back-to-back. */
const ORDER_CLIENTS = 20
const ORDER_MESSAGES = 500
/** How long a runtime gets, from SIGTERM, to close its clients with 1001 and exit. */
const SHUTDOWN_DEADLINE = 10_000

afterAll(async () => {
  await killAllServers()
  await cleanup()
}, 30_000)

describe.each(PRESETS)('%s', (preset: Preset) => {
  let upstream: Upstream
  let server: RuntimeServer | undefined
  /** Per upstream connection: its path, the subprotocol it answered, and how it closed. */
  const upstreamConnections: Array<{ url: string, protocol: string, close?: { code: number, reason: string } }> = []

  const env = () => ({
    NITRO_WS_PROXY_LIVE_TARGET: `${upstream.url}/echo/**`,
    NITRO_WS_PROXY_PRIVATE_TARGET: `${upstream.url}/private/**`,
    NITRO_WS_PROXY_SESSION_PASSWORD: sessionPassword,
  })
  const ws = (path: string) => `${server!.wsUrl}${path}`
  const connect = (path: string, options: Parameters<typeof wsConnect>[1] = {}) => wsConnect(ws(path), { timeout: 5000, ...options })
  const handshakesSince = (count: number) => upstream.handshakes.slice(count)
  const upstreamClosesOf = (url: string) => upstreamConnections.filter(c => c.url === url).map(c => c.close)

  /** POST the app's login route; resolves the `h3=…` session cookie it set. */
  async function login(body: Record<string, unknown>): Promise<string> {
    const response = await fetch(`${server!.url}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    expect(response.status, `POST /login on ${preset}`).toBe(200)
    const cookie = response.headers.getSetCookie().map(c => c.split(';')[0]!).find(c => c.startsWith('h3='))
    expect(cookie, 'set-cookie of /login').toBeDefined()
    return cookie!
  }

  beforeAll(async () => {
    upstream = await startUpstream({
      // The upstream decides: it prefers chat.v2, accepts chat.v1, answers nothing else.
      handleProtocols: protocols => protocols.has('chat.v2') ? 'chat.v2' : protocols.has('chat.v1') ? 'chat.v1' : false,
      onConnection: (socket: WebSocket, request: IncomingMessage) => {
        const entry: (typeof upstreamConnections)[number] = { url: request.url ?? '', protocol: socket.protocol }
        upstreamConnections.push(entry)
        socket.on('close', (code, reason) => { entry.close = { code, reason: reason.toString() } })
      },
    })
    const build = await buildPreset(preset)
    server = await startRuntime(preset, env())
    console.info(`[${preset}] ${build.built ? `built in ${build.ms} ms` : `build reused (stamp matched, ${build.ms} ms)`}; `
      + `started: ${server.command.display} (pid ${server.pid}${server.workerPids.length ? `, workers ${server.workerPids.join(', ')}` : ''}); `
      + `printed: ${server.listeningLines.map(line => JSON.stringify(line)).join(', ')}`)
  }, 300_000)

  afterAll(async () => {
    await server?.kill()
    await cleanup()
  }, 30_000)

  it('relays text as text and binary as binary, byte-exact, in both directions', async () => {
    const before = upstream.received.length
    const client = await connect('/live/fidelity')
    const text = `text ✓ 🚀 ${preset}`
    const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
    const utf8AsBinary = Buffer.from('valid UTF-8, sent as binary ✓', 'utf8')
    const received: ClientMessage[] = []

    client.send(text)
    received.push(await client.next(5000))
    client.send(allBytes)
    received.push(await client.next(5000))
    client.send(utf8AsBinary, true)
    received.push(await client.next(5000))
    // Frames the upstream originates.
    client.send('send-text:from upstream ✓ ünïcödé')
    received.push(await client.next(5000))
    client.send('send-binary:70000')
    received.push(await client.next(5000))
    await client.close()

    // Client → upstream: what the upstream got, type and bytes.
    const atUpstream = upstream.received.slice(before).map(f => ({ isBinary: f.isBinary, hex: f.data.toString('hex') }))
    expect(atUpstream).toEqual([
      { isBinary: false, hex: Buffer.from(text).toString('hex') },
      { isBinary: true, hex: allBytes.toString('hex') },
      { isBinary: true, hex: utf8AsBinary.toString('hex') },
      { isBinary: false, hex: Buffer.from('send-text:from upstream ✓ ünïcödé').toString('hex') },
      { isBinary: false, hex: Buffer.from('send-binary:70000').toString('hex') },
    ])
    // Upstream → client: the echoes and the upstream's own frames, type and bytes.
    const big = Buffer.alloc(70000)
    for (let i = 0; i < big.length; i++) big[i] = i & 0xFF
    expect(received.map(m => ({ isBinary: m.isBinary, hex: m.data.toString('hex') }))).toEqual([
      { isBinary: false, hex: Buffer.from(text).toString('hex') },
      { isBinary: true, hex: allBytes.toString('hex') },
      { isBinary: true, hex: utf8AsBinary.toString('hex') },
      { isBinary: false, hex: Buffer.from('from upstream ✓ ünïcödé').toString('hex') },
      { isBinary: true, hex: big.toString('hex') },
    ])
  }, 30_000)

  it('answers exactly one subprotocol, the one the upstream picked, when the client offers two', async () => {
    const before = upstream.handshakes.length
    // The raw 101: exactly one sec-websocket-protocol header, with exactly one value.
    const raw = await rawUpgrade(ws('/live/proto-raw'), { 'Sec-WebSocket-Protocol': 'chat.v2, chat.v1' }, { timeout: 5000 })
    try {
      expect(raw.statusLine).toMatch(/^HTTP\/1\.1 101/)
      expect(raw.header('sec-websocket-protocol')).toEqual(['chat.v2'])
      // Held open until the proxy dialled (a runtime may answer the client before it dials).
      await expect.poll(() => upstream.handshakes.slice(before).map(h => h.url), { timeout: 5000 }).toContain('/echo/proto-raw')
    }
    finally {
      raw.close()
    }

    // A real client: ws.protocol, and the connection works after the negotiation.
    const client = await connect('/live/proto', { protocols: ['chat.v2', 'chat.v1'] })
    expect(client.protocol).toBe('chat.v2')
    client.send('after negotiation')
    expect((await client.next(5000)).text).toBe('after negotiation')
    await client.close()

    // The upstream was offered both, in order, and answered chat.v2.
    const offered = handshakesSince(before).map(h => ({ url: h.url, offered: String(h.headers['sec-websocket-protocol']).split(',').map(p => p.trim()) }))
    expect(offered).toEqual([
      { url: '/echo/proto-raw', offered: ['chat.v2', 'chat.v1'] },
      { url: '/echo/proto', offered: ['chat.v2', 'chat.v1'] },
    ])
    expect(upstreamConnections.filter(c => c.url === '/echo/proto').map(c => c.protocol)).toEqual(['chat.v2'])
  }, 30_000)

  it('passes close codes and reasons both ways: client 4002 → upstream, upstream 4001 → client', async () => {
    const fromClient = await connect('/live/close-client')
    fromClient.send('ping')
    expect((await fromClient.next(5000)).text).toBe('ping')
    await fromClient.close(4002, 'bye')
    await expect.poll(() => upstreamClosesOf('/echo/close-client'), { timeout: 5000 })
      .toEqual([{ code: 4002, reason: 'bye' }])

    const fromUpstream = await connect('/live/close-upstream')
    fromUpstream.send('close:4001:done')
    expect(await withTimeout(fromUpstream.closed, 5000, 'close from the upstream')).toMatchObject({ code: 4001, reason: 'done' })
  }, 30_000)

  it('maps the wildcard path and query: /live/a/b?x=1 → /echo/a/b?x=1', async () => {
    const before = upstream.handshakes.length
    const client = await connect('/live/a/b?x=1')
    client.send('mapped')
    expect((await client.next(5000)).text).toBe('mapped')
    await client.close()
    expect(handshakesSince(before).map(h => h.url)).toEqual(['/echo/a/b?x=1'])
  }, 30_000)

  it('sends x-forwarded-for/-proto/-host and the auth identity header to the upstream, never client copies', async () => {
    const host = `127.0.0.1:${server!.port}`
    const forwarded = { 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': host }
    const spoofed = { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example' }

    let before = upstream.handshakes.length
    const open = await connect('/live/xf', { headers: spoofed })
    // A round trip first: a runtime may answer the client before it dials the upstream.
    open.send('xf')
    expect((await open.next(5000)).text).toBe('xf')
    await open.close()
    const [openHandshake] = handshakesSince(before)
    expect(openHandshake?.url).toBe('/echo/xf')
    expect(openHandshake?.headers).toMatchObject(forwarded)

    const cookie = await login({ user })
    before = upstream.handshakes.length
    const client = await connect('/private/room?x=1', {
      headers: { cookie, 'x-ws-proxy-user': '{"id":1,"name":"root"}', 'x-user-id': '1', ...spoofed },
    })
    client.send('secret hello')
    expect((await client.next(5000)).text).toBe('secret hello')
    await client.close()
    const [handshake, ...more] = handshakesSince(before)
    expect(more).toEqual([])
    expect(handshake?.url).toBe('/private/room?x=1')
    expect(handshake?.headers).toMatchObject({ ...forwarded, 'x-user-id': '7' })
    expect(JSON.parse(String(handshake?.headers['x-ws-proxy-user']))).toEqual(user)
    expect(handshake?.headers.cookie).toBeUndefined()
  }, 30_000)

  it('guards the session-protected route: 401 without a cookie (nothing dialled), proxied with one', async () => {
    const before = upstream.handshakes.length
    const refused = await upgradeHead(ws('/private/room'))
    expect(refused.statusLine).toMatch(/^HTTP\/1\.1 401 /)
    await sleep(50)
    expect(handshakesSince(before)).toEqual([])

    const cookie = await login({ user })
    const client = await connect('/private/room', { headers: { cookie } })
    client.send('with a session')
    expect((await client.next(5000)).text).toBe('with a session')
    await client.close()
    expect(handshakesSince(before).map(h => h.url)).toEqual(['/private/room'])
  }, 30_000)

  it(`relays for ${CROWD} concurrent clients, each seeing only its own echoes`, async () => {
    const before = upstream.handshakes.length
    const settled = await Promise.allSettled(Array.from({ length: CROWD }, (_, i) => connect(`/live/crowd/${i}`, { timeout: 20_000 })))
    const failed = settled.flatMap((s, i) => s.status === 'rejected' ? [`#${i}: ${(s.reason as Error).message}`] : [])
    expect(failed.slice(0, 5), `${failed.length} of ${CROWD} clients failed to open`).toEqual([])
    const clients = settled.map(s => (s as PromiseFulfilledResult<TestClient>).value)

    // Interleaved: every client's first message, then every client's second, and so on.
    const sent = clients.map((_, i) => Array.from({ length: CROWD_MESSAGES }, (_, j) => j % 2 === 0
      ? { isBinary: false, hex: Buffer.from(`client ${i} message ${j}`).toString('hex') }
      : { isBinary: true, hex: Buffer.from(`client ${i} binary ${j} \u0000\u00FF`).toString('hex') }))
    for (let j = 0; j < CROWD_MESSAGES; j++) {
      clients.forEach((client, i) => client.send(Buffer.from(sent[i]![j]!.hex, 'hex'), sent[i]![j]!.isBinary))
    }
    const got = await Promise.all(clients.map(async (client) => {
      const messages: Array<{ isBinary: boolean, hex: string }> = []
      try {
        for (let j = 0; j < CROWD_MESSAGES; j++) {
          const m = await client.next(20_000)
          messages.push({ isBinary: m.isBinary, hex: m.data.toString('hex') })
        }
      }
      catch (error) {
        messages.push({ isBinary: false, hex: `error: ${(error as Error).message}` })
      }
      return messages
    }))
    const wrong = got.flatMap((messages, i) => JSON.stringify(messages) === JSON.stringify(sent[i]) ? [] : [i])
    expect(wrong.length, `clients that did not see exactly their own echoes, e.g. #${wrong[0]}: ${JSON.stringify(got[wrong[0]!])}`).toBe(0)
    // Nothing else arrived late.
    await sleep(100)
    expect(clients.filter(c => c.messages.length !== CROWD_MESSAGES).length).toBe(0)

    await Promise.allSettled(clients.map(c => c.close()))
    expect(handshakesSince(before).map(h => h.url).sort()).toEqual(Array.from({ length: CROWD }, (_, i) => `/echo/crowd/${i}`).sort())
  }, 90_000)

  // crossws 0.3 runs a hook once its hook resolution settles: a peer's messages stay in order only
  // if no message's resolution can settle before an earlier one's (runtime/unmatched.ts).
  // `NITRO_WS_PROXY_INTERNALS=0` forces node-server onto the message-hook path as well.
  const orderRuns = preset === 'node-server' ? [false, true] : [false]
  it.each(orderRuns)(`keeps each client's ${ORDER_MESSAGES} back-to-back messages in order (${ORDER_CLIENTS} clients; internals off: %s)`, async (internalsOff) => {
    const target = internalsOff ? await startRuntime(preset, { ...env(), NITRO_WS_PROXY_INTERNALS: '0' }) : server!
    try {
      const clients = await Promise.all(Array.from({ length: ORDER_CLIENTS }, (_, i) => wsConnect(`${target.wsUrl}/live/order/${i}`, { timeout: 20_000 })))
      // Every client's whole burst in one synchronous loop: many frames per TCP chunk.
      for (const client of clients) {
        for (let n = 0; n < ORDER_MESSAGES; n++) client.send(String(n))
      }
      await expect.poll(() => clients.reduce((sum, c) => sum + c.messages.length, 0), { timeout: 30_000, interval: 50 })
        .toBe(ORDER_CLIENTS * ORDER_MESSAGES)
      const expected = Array.from({ length: ORDER_MESSAGES }, (_, n) => String(n))
      const outOfOrder = clients.flatMap((c, i) => {
        const got = c.messages.map(m => m.text)
        const at = got.findIndex((text, n) => text !== expected[n])
        return at === -1 ? [] : [`#${i} at ${at}: ${got.slice(Math.max(0, at - 2), at + 3).join(',')}`]
      })
      expect(outOfOrder).toEqual([])
      await Promise.allSettled(clients.map(c => c.close()))
    }
    finally {
      if (internalsOff) await target.kill()
    }
  }, 90_000)

  // The harder case for that order: frames sent in the same write as the upgrade request (a
  // client that does not wait for the 101), so the server reads them with the connection itself,
  // while the open hook's resolution may still be pending.
  it.each(orderRuns)(`keeps the order of ${ORDER_MESSAGES} frames sent with the upgrade request (${ORDER_CLIENTS} clients; internals off: %s)`, async (internalsOff) => {
    const target = internalsOff ? await startRuntime(preset, { ...env(), NITRO_WS_PROXY_INTERNALS: '0' }) : server!
    try {
      const expected = Array.from({ length: ORDER_MESSAGES }, (_, n) => String(n))
      const results = await Promise.all(Array.from({ length: ORDER_CLIENTS }, (_, i) =>
        pipelinedEchoes(target.port, `/live/order-pipelined/${i}`, expected, 20_000)))
      const outOfOrder = results.flatMap((got, i) => {
        const at = got.findIndex((text, n) => text !== expected[n])
        return at === -1 && got.length === expected.length ? [] : [`#${i} at ${at}: ${got.slice(Math.max(0, at - 2), at + 3).join(',')} (${got.length} received)`]
      })
      expect(outOfOrder).toEqual([])
    }
    finally {
      if (internalsOff) await target.kill()
    }
  }, 90_000)

  it(`closes a connected client with 1001 and exits within ${SHUTDOWN_DEADLINE / 1000} s of SIGTERM${preset === 'node-cluster' ? ' (to the primary only)' : ''}`, async () => {
    const shuttingDown = await startRuntime(preset, env())
    try {
      const client = await wsConnect(`${shuttingDown.wsUrl}/live/shutdown`, { timeout: 5000 })
      client.send('before shutdown')
      expect((await client.next(5000)).text).toBe('before shutdown')
      const workers = shuttingDown.workerPids

      const signalled = Date.now()
      process.kill(shuttingDown.pid, 'SIGTERM')
      const timeUp = sleep(SHUTDOWN_DEADLINE).then(() => undefined)
      const [closed, exited] = await Promise.all([
        Promise.race([client.closed, timeUp]),
        Promise.race([shuttingDown.exited, timeUp]),
      ])
      const workersLeft = workers.filter(isAlive)
      // Let a late upstream close land before reading it.
      await sleep(200)
      const upstreamClose = upstreamClosesOf('/echo/shutdown').at(-1)
      const seen = {
        client: closed ? { code: closed.code, reason: closed.reason, afterMs: closed.at - signalled } : 'still open',
        process: exited ? { code: exited.code, signal: exited.signal, afterMs: exited.at - signalled } : 'still running',
        workersLeft,
        upstream: upstreamClose ?? 'still open',
      }
      console.info(`[${preset}] SIGTERM to pid ${shuttingDown.pid}${workers.length ? ` (workers ${workers.join(', ')})` : ''}: ${JSON.stringify(seen)}`)

      expect.soft(closed?.code, 'close code the client saw').toBe(1001)
      expect.soft(upstreamClose?.code, 'close code the upstream saw').toBe(1001)
      expect.soft(exited, `process ${shuttingDown.pid} gone within ${SHUTDOWN_DEADLINE} ms of SIGTERM`).toBeDefined()
      expect.soft(workersLeft, 'cluster workers still running').toEqual([])
      if (exited) expect(exited.at - signalled).toBeLessThan(SHUTDOWN_DEADLINE)
    }
    finally {
      await shuttingDown.kill()
    }
  }, 90_000)
})

/** A masked client text frame (payload under 126 bytes). */
function clientTextFrame(text: string): Buffer {
  const payload = Buffer.from(text)
  const mask = randomBytes(4)
  const frame = Buffer.alloc(6 + payload.length)
  frame[0] = 0x81
  frame[1] = 0x80 | payload.length
  mask.copy(frame, 2)
  for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i]! ^ mask[i % 4]!
  return frame
}

/**
 * Raw client: the upgrade request and `texts` as frames in one write, then the texts of the
 * server's frames until as many arrived (or the socket ended), then a close frame.
 */
function pipelinedEchoes(port: number, path: string, texts: string[], timeout: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const received: string[] = []
    let buffer = Buffer.alloc(0)
    let head = true
    const timer = setTimeout(() => finish(new Error(`${path}: ${received.length} of ${texts.length} echoes after ${timeout} ms`)), timeout)
    function finish(error?: Error) {
      clearTimeout(timer)
      socket.destroy()
      error ? reject(error) : resolve(received)
    }
    socket.on('error', finish)
    socket.on('close', () => finish())
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk])
      if (head) {
        const end = buffer.indexOf('\r\n\r\n')
        if (end === -1) return
        const status = buffer.subarray(0, buffer.indexOf('\r\n')).toString()
        if (!/^HTTP\/1\.1 101 /.test(status)) return finish(new Error(`${path}: ${status}`))
        buffer = buffer.subarray(end + 4)
        head = false
      }
      // Unmasked server frames with a 7- or 16-bit length; a close ends the read.
      while (buffer.length >= 2) {
        const opcode = buffer[0]! & 0x0F
        let length = buffer[1]! & 0x7F
        let offset = 2
        if (length === 126) {
          if (buffer.length < 4) return
          length = buffer.readUInt16BE(2)
          offset = 4
        }
        if (buffer.length < offset + length) return
        const payload = buffer.subarray(offset, offset + length)
        buffer = buffer.subarray(offset + length)
        if (opcode === 0x8) return finish()
        // Binary too: on crossws 0.3's message-hook path a client's text frame goes on as binary.
        if (opcode === 0x1 || opcode === 0x2) received.push(payload.toString())
        if (received.length === texts.length) {
          socket.end(Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8]))
          return finish()
        }
      }
    })
    socket.on('connect', () => {
      const request = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
        + `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`
      socket.write(Buffer.concat([Buffer.from(request), ...texts.map(clientTextFrame)]))
    })
  })
}
