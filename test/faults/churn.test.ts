/**
 * Many connect/close cycles mixing normal closes, abrupt drops of the client's TCP socket, and
 * clients leaving while their upstream is still connecting: afterwards nothing is left (no open
 * connection, upstream socket, timer, handle) and memory is flat, while a bystander on the same
 * proxy kept working throughout.
 */
import type { Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { CROSSWS_LINES, cleanup, sleep, startUpstream, trackTimers, usesWsCtor, waitFor, withTimeout } from '../helpers'
import { activeResources, closeBystander, faultRig, garbageCollector } from './harness'

afterEach(() => cleanup())

/** The slow upstream answers its handshakes this late: every `/slow` client leaves before. */
const SLOW_HANDSHAKE_MS = 200
/** Enough for the heap to reach its steady size (it stops growing after a few hundred cycles). */
const WARM_UP_CYCLES = 200
const MEASURED_CYCLES = 300
const CONCURRENCY = 10

const KINDS = ['close', 'destroy', 'close-connecting', 'destroy-connecting', 'abort-upgrade'] as const
type Kind = typeof KINDS[number]

/** Opens a `ws` client (kept out of `track()`: a churn must not hold hundreds of clients until cleanup). */
async function open(url: string): Promise<{ ws: WebSocket, closed: Promise<number> }> {
  const ws = new WebSocket(url, { handshakeTimeout: 3_000 })
  ws.on('error', () => {})
  const closed = new Promise<number>(resolve => ws.once('close', code => resolve(code)))
  try {
    await withTimeout(new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('close', code => reject(new Error(`closed (${code}) before open`)))
    }), 4_000, `open ${url}`)
  }
  catch (error) {
    ws.terminate()
    throw error
  }
  return { ws, closed }
}

/** One cycle of `kind`; never leaves its client behind, whatever happens. */
async function cycle(base: string, kind: Kind, i: number): Promise<void> {
  if (kind === 'abort-upgrade') {
    // The request reaches the proxy, the client is gone before any answer.
    const socket: Socket = connect(Number(new URL(base).port), '127.0.0.1')
    socket.on('error', () => {})
    const key = randomBytes(16).toString('base64')
    const closed = new Promise(resolve => socket.once('close', resolve))
    socket.once('connect', () => {
      socket.write(`GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`, () => socket.destroy())
    })
    try { await withTimeout(closed, 2_000, 'aborted upgrade closed') }
    finally { socket.destroy() }
    return
  }

  const connecting = kind === 'close-connecting' || kind === 'destroy-connecting'
  const { ws, closed } = await open(`${base}/${connecting ? 'slow' : 'fast'}`)
  try {
    if (!connecting) {
      const text = `cycle ${i}`
      const echoed = withTimeout(new Promise<string>(resolve => ws.once('message', data => resolve(String(data)))), 2_000, `echo of ${text}`)
      ws.send(text)
      expect(await echoed).toBe(text)
    }
    if (kind === 'close' || kind === 'close-connecting') ws.close(1000)
    else (ws as unknown as { _socket: Socket })._socket.destroy()
    await withTimeout(closed, 2_000, `close of cycle ${i} (${kind})`)
  }
  finally {
    ws.terminate()
  }
}

describe.each(CROSSWS_LINES)('crossws %s: connect/close churn', (line) => {
  it(`${WARM_UP_CYCLES + MEASURED_CYCLES} cycles leave no connection, socket, timer or handle, and flat memory`, async () => {
    const fast = await startUpstream()
    const slow = await startUpstream({ handshakeDelay: SLOW_HANDSHAKE_MS })
    let slowOpens = 0
    const rig = await faultRig(line, pathname => pathname === '/slow' ? slow.url : fast.url, {
      onUpstreamOpen: (peer) => {
        if (new URL(peer.request.url).pathname === '/slow') slowOpens++
      },
    })
    const gc = garbageCollector()
    const released = () => rig.proxy.stats().open === 1
      && fast.connections + fast.sockets + slow.connections + slow.sockets === 0
      && (!usesWsCtor || fast.idleSockets + slow.idleSockets === 0)
    const seen = () => ({
      stats: rig.proxy.stats(),
      fast: { connections: fast.connections, sockets: fast.sockets, idle: fast.idleSockets },
      slow: { connections: slow.connections, sockets: slow.sockets, idle: slow.idleSockets },
    })
    /** Settled, with the upstreams' records emptied, so only the proxy's state is weighed. */
    const heapUsed = async () => {
      await waitFor(released, { timeout: 3_000, label: 'every churned connection released', describe: seen })
      await sleep(SLOW_HANDSHAKE_MS + 50) // the slow upstream's delayed answers have fired
      for (const upstream of [fast, slow]) {
        upstream.received.length = 0
        upstream.handshakes.length = 0
        upstream.closes.length = 0
      }
      for (let i = 0; i < 3; i++) gc?.()
      return process.memoryUsage().heapUsed
    }

    const socketsAtStart = activeResources().TCPSocketWrap
    const timers = trackTimers()
    const started = Date.now()
    const run = async (from: number, count: number) => {
      for (let i = from; i < from + count; i += CONCURRENCY) {
        await Promise.all(Array.from({ length: Math.min(CONCURRENCY, from + count - i) }, (_, j) =>
          cycle(rig.server.url, KINDS[(i + j) % KINDS.length]!, i + j)))
        if ((i + CONCURRENCY) % 100 === 0) await rig.expectHealthy(`after cycle ${i + CONCURRENCY}`)
      }
    }

    await run(0, WARM_UP_CYCLES)
    const heapBefore = await heapUsed()
    // Settled after the warm-up: the test runner's own start-up timers are gone by now.
    const resourcesBefore: Record<string, number> = { ...activeResources(), TCPSocketWrap: socketsAtStart }
    await run(WARM_UP_CYCLES, MEASURED_CYCLES)
    const heapAfter = await heapUsed()
    const elapsed = Date.now() - started

    expect(elapsed).toBeLessThan(20_000)
    expect(slowOpens).toBe(0) // every `/slow` client left while its upstream was connecting
    const { stats } = seen()
    // Four kinds of five reach the proxy's `open`; an aborted upgrade may or may not.
    expect(stats.opened).toBeGreaterThanOrEqual(1 + (WARM_UP_CYCLES + MEASURED_CYCLES) * 4 / 5)
    expect(stats.opened - Object.values(stats.closed).reduce((sum, n) => sum + n, 0)).toBe(1)
    expect(timers.pending()).toEqual([])
    await waitFor(() => {
      const now = activeResources()
      return now.TCPSocketWrap === resourcesBefore.TCPSocketWrap && now.Timeout === resourcesBefore.Timeout
    }, { timeout: 2_000, label: 'active handles back to their starting counts', describe: () => ({ before: resourcesBefore, now: activeResources() }) })
    // With a real GC the heap must be flat; without one, only gross leaks can be told apart.
    const growth = heapAfter - heapBefore
    expect(growth, `heap grew by ${(growth / 1024).toFixed(0)} KiB over ${MEASURED_CYCLES} cycles (gc: ${!!gc})`)
      .toBeLessThan(gc ? 2 * 1024 * 1024 : 20 * 1024 * 1024)

    await rig.expectHealthy()
    await closeBystander(rig)
  }, 40_000)
})
