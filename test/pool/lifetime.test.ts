/**
 * `maxLifetime`: each connection is closed on both legs with `lifetimeClose` (1001 'Connection
 * lifetime reached' by default) after maxLifetime ±10 %, so connections opened together end
 * spread out instead of all at once.
 */
import type { CloseInfo } from '../helpers'
import { afterEach, describe, expect, it } from 'vitest'
import { CROSSWS_LINES, cleanup, startUpstream, usesWsCtor, waitFor, withTimeout } from '../helpers'
import { openMany, poolProxy } from './harness'

afterEach(() => cleanup(5_000))

describe('maxLifetime at scale (crossws 0.3)', () => {
  it('maxLifetime 2000, 300 connections: 1001 on both legs, 1.8-2.2 s after opening, spread over the window', async () => {
    const upstreams = await Promise.all([startUpstream(), startUpstream()])
    const { proxy, server } = await poolProxy('0.3', { target: upstreams.map(u => u.url), maxLifetime: 2_000 })
    const startedAt: number[] = []
    const openedAt: number[] = []
    const clients = await openMany(server.url, 300, {
      concurrency: 100,
      onOpen: (_client, i, started) => {
        startedAt[i] = started
        openedAt[i] = Date.now()
      },
    })
    const lastOpen = Math.max(...openedAt)
    const closes: CloseInfo[] = await withTimeout(Promise.all(clients.map(c => c.closed)), 5_000, 'lifetime closes')

    expect(closes.map(c => `${c.code} ${c.reason}`)).toEqual(Array(300).fill('1001 Connection lifetime reached'))
    // From before the handshake (the timer starts after it) and from the client's open event.
    const fromStart = closes.map((c, i) => c.at - startedAt[i]!)
    const fromOpen = closes.map((c, i) => c.at - openedAt[i]!)
    const min = Math.min(...fromStart)
    const max = Math.max(...fromOpen)
    const buckets = new Map<number, number>()
    for (const ms of fromOpen) buckets.set(Math.floor(ms / 100) * 100, (buckets.get(Math.floor(ms / 100) * 100) ?? 0) + 1)
    const histogram = [...buckets].sort(([x], [y]) => x - y).map(([ms, n]) => `${ms}:${n}`).join(' ')
    const fullest = Math.max(...buckets.values())
    console.info(`[pool] maxLifetime 2000: 300 opened within ${lastOpen - Math.min(...startedAt)} ms; lifetime ${min}-${max} ms; per 100 ms: ${histogram}`)
    expect(min).toBeGreaterThanOrEqual(1_800)
    // The timer is at most 2,200 ms; the client measures it plus timer lateness and the close
    // frame's trip, in a process also running the upstreams and 300 clients on 2 shared cores
    // (next to another test file): stalls of ~200 ms were seen (58 of 300 late, at most 193 ms).
    const late = fromOpen.filter(ms => ms > 2_200).length
    console.info(`[pool] maxLifetime 2000: ${late} of 300 seen after 2,200 ms (at most ${max - 2_200} ms late)`)
    expect(max).toBeLessThanOrEqual(2_500)
    expect(late).toBeLessThanOrEqual(75)
    expect(buckets.size).toBeGreaterThanOrEqual(4)
    expect(fullest).toBeLessThanOrEqual(300 * 0.4)

    // The upstream side got the code too.
    await waitFor(() => upstreams.reduce((n, u) => n + u.closes.length, 0) === 300, { timeout: 3_000, label: '300 upstream closes' })
    const upstreamCloses = upstreams.flatMap(u => u.closes)
    expect(new Set(upstreamCloses.map(c => `${c.code} ${c.reason}`))).toEqual(new Set([usesWsCtor ? '1001 Connection lifetime reached' : '1000 Connection lifetime reached']))
    expect(proxy.stats().closed.lifetime).toBe(300)
    expect(proxy.stats().open).toBe(0)
  }, 30_000)
})

describe.each(CROSSWS_LINES)('lifetimeClose on crossws %s', (line) => {
  it('lifetimeClose [4000, \'rotate\'] is what both legs get', async () => {
    const upstream = await startUpstream()
    const { proxy, server } = await poolProxy(line, { target: [upstream.url], maxLifetime: 500, lifetimeClose: [4000, 'rotate'] })
    const opened = Date.now()
    const clients = await openMany(server.url, 20, { concurrency: 20 })
    const closes = await withTimeout(Promise.all(clients.map(c => c.closed)), 3_000, 'closes')
    expect(closes.map(c => [c.code, c.reason])).toEqual(Array(20).fill([4000, 'rotate']))
    for (const c of closes) expect(c.at - opened).toBeGreaterThanOrEqual(450)
    await waitFor(() => upstream.closes.length === 20, { label: '20 upstream closes' })
    expect(upstream.closes).toEqual(Array(20).fill({ code: 4000, reason: 'rotate' }))
    expect(proxy.stats().closed.lifetime).toBe(20)
  })
})
