/**
 * Deploy controls: `drainAll({ spread })` closes every connection (both legs, 1001) evenly over
 * `spread` ms and answers upgrades meanwhile with 503 + Retry-After; `closeMatching()` closes
 * exactly the connections it selects (1008), at once, and says how many.
 */
import type { CloseInfo, TestClient } from '../helpers'
import { afterEach, describe, expect, it } from 'vitest'
import { CROSSWS_LINES, cleanup, rawUpgrade, sleep, startUpstream, usesWsCtor, waitFor, withTimeout, wsConnect } from '../helpers'
import { echoAll, openMany, poolProxy } from './harness'

afterEach(() => cleanup(5_000))

describe('drainAll at scale (crossws 0.3)', () => {
  it('drainAll({ spread: 3000 }) with 1,000 connections: 1001 everywhere, evenly spread, 503 + Retry-After meanwhile', async () => {
    const upstreams = await Promise.all([startUpstream(), startUpstream()])
    const { proxy, server } = await poolProxy('0.3', { target: upstreams.map(u => u.url) })
    const clients = await openMany(server.url, 1_000, { concurrency: 100 })
    await waitFor(() => upstreams[0]!.connections + upstreams[1]!.connections === 1_000, { timeout: 5_000, label: '1,000 upstream connections' })
    await echoAll(clients.filter((_, i) => i % 20 === 0))

    const started = Date.now()
    let drained = 0
    const drain = proxy.drainAll({ spread: 3_000 }).then(() => { drained = Date.now() })
    await sleep(500)
    const during = await rawUpgrade(server.url)
    expect(during.status).toBe(503)
    expect(during.header('retry-after')).toEqual(['1'])
    await expect(wsConnect(server.url)).rejects.toThrow(/503/)

    const closes: CloseInfo[] = await withTimeout(Promise.all(clients.map(c => c.closed)), 8_000, 'every client closed')
    await withTimeout(drain, 3_000, 'drainAll resolves')
    const codes = new Map<number, number>()
    for (const c of closes) codes.set(c.code, (codes.get(c.code) ?? 0) + 1)
    expect(Object.fromEntries(codes)).toEqual({ 1001: 1_000 })
    expect(new Set(closes.map(c => c.reason))).toEqual(new Set(['Server shutting down']))

    const times = closes.map(c => c.at - started).sort((x, y) => x - y)
    const last = times.at(-1)!
    // Busiest 1-second window (starting at any close) against the average rate over the spread.
    let busiest = 0
    for (let i = 0, j = 0; i < times.length; i++) {
      while (j < times.length && times[j]! < times[i]! + 1_000) j++
      busiest = Math.max(busiest, j - i)
    }
    const perSecond = [0, 1, 2, 3, 4].map(s => times.filter(t => t >= s * 1_000 && t < (s + 1) * 1_000).length)
    console.info(`[pool] drainAll 3000: first close ${times[0]} ms, last ${last} ms, drainAll resolved at ${drained - started} ms; per second ${perSecond.join('/')}; busiest 1 s window ${busiest} (average ${Math.round(1_000 / 3)}/s)`)
    expect(busiest).toBeLessThanOrEqual(2 * 1_000 / 3)
    expect(last).toBeLessThanOrEqual(3_000 + 1_500)
    expect(times[0]).toBeLessThan(500)

    await waitFor(() => upstreams[0]!.closes.length + upstreams[1]!.closes.length === 1_000, { timeout: 3_000, label: '1,000 upstream closes' })
    const upstreamCodes = new Set(upstreams.flatMap(u => u.closes.map(c => `${c.code} ${c.reason}`)))
    expect(upstreamCodes).toEqual(new Set([`${usesWsCtor ? 1001 : 1000} Server shutting down`]))
    expect(proxy.stats().closed.shutdown).toBe(1_000)
    expect(proxy.stats().open).toBe(0)
  }, 40_000)
})

describe.each(CROSSWS_LINES)('drainAll and closeMatching on crossws %s', (line) => {
  it('drainAll({ spread: 400 }) with 40 connections: 1001 on both legs, 503 + Retry-After meanwhile', async () => {
    const upstreams = await Promise.all([startUpstream(), startUpstream()])
    const { proxy, server } = await poolProxy(line, { target: upstreams.map(u => u.url) })
    const clients = await openMany(server.url, 40, { concurrency: 40 })
    await echoAll(clients)
    const started = Date.now()
    const drain = proxy.drainAll({ spread: 400 })
    const during = await rawUpgrade(server.url)
    expect([during.status, during.header('retry-after')]).toEqual([503, ['1']])
    const closes = await withTimeout(Promise.all(clients.map(c => c.closed)), 3_000, 'closes')
    await withTimeout(drain, 2_000, 'drainAll')
    expect(closes.map(c => [c.code, c.reason])).toEqual(Array(40).fill([1001, 'Server shutting down']))
    const times = closes.map(c => c.at - started).sort((x, y) => x - y)
    expect(times.at(-1)!).toBeLessThanOrEqual(400 + 1_500)
    expect(times.at(-1)! - times[0]!).toBeGreaterThanOrEqual(250)
    await waitFor(() => upstreams[0]!.closes.length + upstreams[1]!.closes.length === 40, { label: '40 upstream closes' })
    expect(new Set(upstreams.flatMap(u => u.closes.map(c => c.code)))).toEqual(new Set([usesWsCtor ? 1001 : 1000]))
    expect((await rawUpgrade(server.url)).status).toBe(503)
  })


  it('closes exactly user 7\'s connections with 1008 within 100 ms, returns the count, leaves the others open', async () => {
    const upstream = await startUpstream()
    const { proxy, server } = await poolProxy(line, { target: [upstream.url] }, {
      context: request => ({ user: { id: Number(new URL(request.url).searchParams.get('user')) } }),
    })
    const users = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 7, 7, 7]
    const clients: TestClient[] = await openMany(i => `${server.url}/?user=${users[i]}`, users.length, { concurrency: 13 })
    await echoAll(clients)
    const sevens = clients.filter((_, i) => users[i] === 7)
    const others = clients.filter((_, i) => users[i] !== 7)

    const at = Date.now()
    const count = proxy.closeMatching(peer => (peer.context.user as { id?: number } | undefined)?.id === 7)
    expect(count).toBe(4)
    const closes = await withTimeout(Promise.all(sevens.map(c => c.closed)), 1_000, 'user 7 closed')
    for (const c of closes) {
      expect([c.code, c.reason]).toEqual([1008, 'Revoked'])
      expect(c.at - at).toBeLessThanOrEqual(100)
    }
    await waitFor(() => upstream.closes.length === 4, { label: '4 upstream closes' })
    expect(upstream.closes).toEqual(Array(4).fill({ code: usesWsCtor ? 1008 : 1000, reason: 'Revoked' }))

    await sleep(50)
    expect(others.every(c => c.isOpen)).toBe(true)
    await echoAll(others)
    expect(upstream.connections).toBe(9)
    expect(proxy.stats().closed.revoked).toBe(4)
    expect(proxy.stats().open).toBe(9)
    // Nothing left to match; a custom code and reason.
    expect(proxy.closeMatching(peer => (peer.context.user as { id?: number } | undefined)?.id === 7)).toBe(0)
    expect(proxy.closeMatching(peer => (peer.context.user as { id?: number } | undefined)?.id === 3, 4001, 'logged out')).toBe(1)
    expect(await withTimeout(others[2]!.closed, 1_000, 'user 3 closed')).toMatchObject({ code: 4001, reason: 'logged out' })
    expect(proxy.stats().open).toBe(8)
  })
})
