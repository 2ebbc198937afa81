/**
 * Client send rates (`messagesPerSecond`, `bytesPerSecond`: token buckets holding one second's
 * worth): a client over a rate is closed with 1008 naming the rate, its upstream gets 1001
 * 'Client rate limited'; this holds with frame passthrough on (the default) and off, for text and
 * binary, and while the upstream is still connecting. A client under the rate is never closed,
 * and a well-behaved client keeps its latency while others are being limited. Closes are counted
 * (`stats().limited`, `stats().closed['rate-limit']`) and give their slot back.
 */
import type { ChildProcess } from 'node:child_process'
import type { WebSocketProxy } from '../../src/core/types'
import type { TestClient, Upstream } from '../helpers'
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { cleanup, CROSSWS_LINES, sleep, startHangingUpstream, startUpstream, track, waitFor, withTimeout, wsConnect } from '../helpers'
import { echo, limitedProxy, percentile, waitLimits, ZERO } from './harness'

afterEach(() => cleanup())

const MESSAGE_REASON = 'Message rate limit exceeded'
const BYTE_REASON = 'Byte rate limit exceeded'

/** Sends `count` messages of `size` bytes (text or binary) at once. */
function flood(client: TestClient, count: number, size: number, binary: boolean): void {
  const payload = binary ? Buffer.alloc(size, 0x62) : 'x'.repeat(size)
  for (let i = 0; i < count && client.isOpen; i++) client.send(payload, binary)
}

async function expectRateClosed(client: TestClient, upstream: Upstream, proxy: WebSocketProxy, reason: string, counter: 'messageRate' | 'byteRate') {
  const closed = await withTimeout(client.closed, 3_000, 'the rate-limited client closed')
  expect({ code: closed.code, reason: closed.reason }).toEqual({ code: 1008, reason })
  await waitFor(() => upstream.closes.length === 1, { label: 'the upstream leg closed' })
  expect(upstream.closes[0]).toEqual({ code: 1001, reason: 'Client rate limited' })
  const stats = proxy.stats()
  expect(stats.limited).toEqual({ connections: 0, perIp: 0, perUser: 0, messageRate: counter === 'messageRate' ? 1 : 0, byteRate: counter === 'byteRate' ? 1 : 0 })
  expect(stats.closed['rate-limit']).toBe(1)
  await waitLimits(proxy, ZERO, 'after the rate close')
  expect(proxy.stats().open).toBe(0)
}

describe.each(CROSSWS_LINES)('rates on crossws %s', (line) => {
  for (const passthrough of [true, false]) {
    for (const binary of [false, true]) {
      const mode = `passthrough ${passthrough ? 'on' : 'off'}, ${binary ? 'binary' : 'text'}`

      it(`messagesPerSecond 20: 100 messages at once → 1008 '${MESSAGE_REASON}', upstream 1001 (${mode})`, async () => {
        const upstream = await startUpstream()
        const { proxy, server, counts } = await limitedProxy(line, { target: upstream.url, passthrough, limits: { messagesPerSecond: 20, connections: 10 } })
        const client = await wsConnect(server.url)
        await echo(client, 'warm-up')
        // Passthrough starts once both legs are open (possibly a turn later): let it.
        await sleep(20)
        const before = counts.messageHooks
        flood(client, 100, 10, binary)
        await expectRateClosed(client, upstream, proxy, MESSAGE_REASON, 'messageRate')
        // The burst is one second's worth: at most 20 messages got through (the warm-up included).
        expect(upstream.received.length).toBeLessThanOrEqual(20)
        expect(upstream.received.length).toBeGreaterThanOrEqual(15)
        expect(upstream.received.slice(1).every(frame => frame.isBinary === binary)).toBe(true)
        // With passthrough on, the client's frames never went through the crossws hook.
        if (passthrough) expect(counts.messageHooks).toBe(before)
        else expect(counts.messageHooks).toBeGreaterThan(before)
      })

      it(`bytesPerSecond 10_000: 30 × 1,000 bytes at once → 1008 '${BYTE_REASON}' (${mode})`, async () => {
        const upstream = await startUpstream()
        const { proxy, server, counts } = await limitedProxy(line, { target: upstream.url, passthrough, limits: { bytesPerSecond: 10_000, connections: 10 } })
        const client = await wsConnect(server.url)
        await echo(client, 'warm-up')
        await sleep(20)
        const before = counts.messageHooks
        flood(client, 30, 1_000, binary)
        await expectRateClosed(client, upstream, proxy, BYTE_REASON, 'byteRate')
        const relayed = upstream.received.slice(1).reduce((sum, frame) => sum + frame.data.length, 0)
        expect(relayed).toBeLessThanOrEqual(10_000)
        // With passthrough on, the client's frames never went through the crossws hook.
        if (passthrough) expect(counts.messageHooks).toBe(before)
        else expect(counts.messageHooks).toBeGreaterThan(before)
      })
    }
  }

  it('bytesPerSecond: one 50 KB message is over the burst (passthrough counts it as its frame arrives)', async () => {
    const upstream = await startUpstream()
    const { proxy, server, counts } = await limitedProxy(line, { target: upstream.url, limits: { bytesPerSecond: 10_000, connections: 10 } })
    const client = await wsConnect(server.url)
    await echo(client, 'warm-up')
    await sleep(20)
    const before = counts.messageHooks
    client.send(Buffer.alloc(50_000), true)
    await expectRateClosed(client, upstream, proxy, BYTE_REASON, 'byteRate')
    // Only the warm-up arrived: the frame was cut off (passthrough) or refused whole.
    expect(upstream.received.length).toBe(1)
    expect(counts.messageHooks).toBe(before)
  })

  it('messages are counted per message, not per frame: 15 messages of 3 fragments each stay under 20/s (passthrough on and off)', async () => {
    for (const passthrough of [true, false]) {
      const upstream = await startUpstream()
      const { proxy, server, counts } = await limitedProxy(line, { target: upstream.url, passthrough, limits: { messagesPerSecond: 20 } })
      const client = await wsConnect(server.url)
      await echo(client, 'warm-up')
      await sleep(20)
      const before = counts.messageHooks
      for (let i = 0; i < 15; i++) {
        client.ws.send(`${i}-a`, { fin: false, binary: false })
        client.ws.send(`-b`, { fin: false, binary: false })
        client.ws.send(`-c`, { fin: true, binary: false })
      }
      await waitFor(() => upstream.received.length === 16 || !client.isOpen, { label: `15 fragmented messages (passthrough ${passthrough})` })
      expect(client.isOpen).toBe(true)
      expect(upstream.received.at(-1)!.text).toBe('14-a-b-c')
      expect(proxy.stats().limited.messageRate).toBe(0)
      if (passthrough) expect(counts.messageHooks).toBe(before)
    }
  })

  it('while the upstream is still connecting, queued messages count too', async () => {
    const hanging = await startHangingUpstream()
    const { proxy, server } = await limitedProxy(line, { target: hanging.url, limits: { messagesPerSecond: 20, connections: 5 } })
    const client = await wsConnect(server.url)
    flood(client, 100, 10, false)
    const closed = await withTimeout(client.closed, 3_000, 'closed while connecting')
    expect({ code: closed.code, reason: closed.reason }).toEqual({ code: 1008, reason: MESSAGE_REASON })
    expect(proxy.stats().limited.messageRate).toBe(1)
    expect(proxy.stats().closed['rate-limit']).toBe(1)
    await waitLimits(proxy, ZERO, 'after the rate close while connecting')
  })
})

describe('clients under the rate', () => {
  it('15 messages/s for 3 s is never closed (both lines, passthrough on and off, message and byte rates on)', async () => {
    const runs = await Promise.all(CROSSWS_LINES.flatMap(line => [true, false].map(async (passthrough) => {
      const upstream = await startUpstream()
      const { proxy, server } = await limitedProxy(line, { target: upstream.url, passthrough, limits: { messagesPerSecond: 20, bytesPerSecond: 10_000 } })
      const client = await wsConnect(server.url)
      return { line, passthrough, upstream, proxy, client }
    })))
    const payload = 'y'.repeat(500) // 15 × 500 = 7,500 bytes/s, under 10,000
    for (let i = 0; i < 45; i++) {
      for (const run of runs) run.client.send(`${i}:${payload}`)
      // At most 15 per second: a late timer never makes the client catch up with a burst.
      await sleep(1000 / 15)
    }
    for (const run of runs) {
      await waitFor(() => run.client.messages.length === 45 || !run.client.isOpen, { timeout: 3_000, label: `45 echoes (${run.line}, passthrough ${run.passthrough})` })
      expect({ line: run.line, passthrough: run.passthrough, open: run.client.isOpen, echoed: run.client.messages.length }).toEqual({ line: run.line, passthrough: run.passthrough, open: true, echoed: 45 })
      expect(run.proxy.stats().limited).toEqual({ connections: 0, perIp: 0, perUser: 0, messageRate: 0, byteRate: 0 })
      expect(run.proxy.stats().closed['rate-limit']).toBe(0)
    }
  })

  it.each(CROSSWS_LINES)('crossws %s: a well-behaved client keeps its latency while flooding clients on the same route are being limited', async (line) => {
    const upstream = await startUpstream()
    const { proxy, server } = await limitedProxy(line, { target: upstream.url, limits: { messagesPerSecond: 200, connections: 50 } })
    const good = await wsConnect(server.url)
    const roundTrips = async (count: number) => {
      const times: number[] = []
      for (let i = 0; i < count; i++) {
        const started = process.hrtime.bigint()
        await echo(good, `ping ${i}`)
        times.push(Number(process.hrtime.bigint() - started) / 1e6)
        await sleep(10) // ~90 per second: under the rate
      }
      return times
    }
    await roundTrips(10) // warm up
    const baseline = await roundTrips(60)

    // A flooder in another process: each of its connections sends 1,000 × 512 B at once, is cut
    // off, and the next one comes 20 ms later (the rate limit is under test, not a connect flood).
    const flooder = startFlooder(`${server.url}/flood`, 1_500, 1_000, 512, 20)
    await flooder.ready
    const during = await roundTrips(60)
    const report = await flooder.done
    const p50 = { baseline: percentile(baseline, 50), during: percentile(during, 50) }
    const p90 = { baseline: percentile(baseline, 90), during: percentile(during, 90) }
    console.info(`[limits] crossws ${line}: good client round trip p50 ${p50.baseline.toFixed(2)} → ${p50.during.toFixed(2)} ms, p90 ${p90.baseline.toFixed(2)} → ${p90.during.toFixed(2)} ms; flooder connections ${report.connections}, closes ${JSON.stringify(report.codes)}`)

    expect(good.isOpen).toBe(true)
    expect(report.connections).toBeGreaterThan(0)
    // Every flooding connection was cut off by the rate limit, and counted.
    expect(report.codes).toEqual({ 1008: report.connections })
    await waitFor(() => proxy.stats().limited.messageRate === report.connections, { label: 'every flooder counted', describe: () => proxy.stats().limited })
    // Loose: 5× the baseline (taken as at least 1 ms: loopback round trips under a millisecond
    // are mostly scheduling noise), and under 50 ms.
    expect(p50.during).toBeLessThan(5 * Math.max(p50.baseline, 1))
    expect(p50.during).toBeLessThan(50)
  })
})

const FLOODER = fileURLToPath(new URL('./flooder.mjs', import.meta.url))

function startFlooder(url: string, durationMs: number, messages: number, size: number, pauseMs: number) {
  const child: ChildProcess = fork(FLOODER, [url, String(durationMs), String(messages), String(size), String(pauseMs)], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const exited = new Promise(resolve => child.once('exit', resolve))
  track(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await withTimeout(exited, 1_500, 'flooder exit')
  })
  const ready = withTimeout(new Promise<void>((resolve) => {
    child.on('message', (m: { type?: string }) => { if (m?.type === 'ready') resolve() })
  }), 5_000, 'flooder ready')
  const done = withTimeout(new Promise<{ connections: number, codes: Record<string, number> }>((resolve) => {
    child.on('message', (m: { type?: string, connections?: number, codes?: Record<string, number> }) => {
      if (m?.type === 'done') resolve({ connections: m.connections!, codes: m.codes! })
    })
  }), durationMs + 8_000, 'flooder done')
  return { ready, done }
}
