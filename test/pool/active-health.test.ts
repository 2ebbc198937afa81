/**
 * Active health checks: every `interval` ms each upstream gets `GET <path>` (2xx/3xx passes) or,
 * without a path, a WebSocket handshake. A failing upstream gets no new connection until it
 * passes again; its open connections are left alone.
 */
import type { TestClient } from '../helpers'
import { afterEach, describe, expect, it } from 'vitest'
import { CROSSWS_LINES, cleanup, sleep, waitFor } from '../helpers'
import { echoAll, keyOf, openMany, poolProxy, startHealthUpstream } from './harness'

afterEach(() => cleanup())

describe.each(CROSSWS_LINES)('active health checks on crossws %s', (line) => {
  it('path /healthz every 200 ms: a 503 takes the upstream out, a 200 brings it back', async () => {
    const upstreams = await Promise.all([startHealthUpstream(), startHealthUpstream(), startHealthUpstream()])
    const [a, b, c] = upstreams as [typeof upstreams[0], typeof upstreams[0], typeof upstreams[0]]
    const { proxy, server } = await poolProxy(line, {
      target: upstreams.map(u => u.url),
      healthCheck: { interval: 200, path: '/healthz' },
      headers: { 'x-via': 'proxy' },
    })
    const health = () => upstreams.map(u => proxy.stats().upstreams[keyOf(u.url)]!.healthy)
    await waitFor(() => upstreams.every(u => u.healthRequests >= 1), { timeout: 2_000, label: 'first checks', describe: () => upstreams.map(u => u.healthRequests) })
    const held: TestClient[] = await openMany(server.url, 3, { concurrency: 3 })
    await echoAll(held)
    expect(upstreams.map(u => u.connections)).toEqual([1, 1, 1])

    b.healthy = false
    const failedAt = Date.now()
    await waitFor(() => !health()[1], { timeout: 1_500, label: 'b unhealthy', describe: health })
    const detectedIn = Date.now() - failedAt
    expect(health()).toEqual([true, false, true])
    // Its open connection is left alone.
    await echoAll(held)
    const attemptsBefore = b.attempts
    held.push(...await openMany(server.url, 30, { concurrency: 10 }))
    await echoAll(held)
    expect(b.attempts).toBe(attemptsBefore)
    expect(b.connections).toBe(1)
    expect([a.connections, c.connections]).toEqual([16, 16])
    // Still failing a while later: still out.
    await sleep(450)
    held.push(...await openMany(server.url, 6, { concurrency: 6 }))
    expect(b.attempts).toBe(attemptsBefore)

    b.healthy = true
    const passedAt = Date.now()
    await waitFor(() => health()[1]!, { timeout: 1_500, label: 'b healthy again', describe: health })
    const backIn = Date.now() - passedAt
    held.push(...await openMany(server.url, 30, { concurrency: 10 }))
    await echoAll(held)
    console.info(`[pool] active health /healthz (crossws ${line}): out after ${detectedIn} ms, back after ${backIn} ms; then b took ${b.connections - 1} of 30; checks received ${upstreams.map(u => u.healthRequests).join('/')}`)
    expect(b.connections).toBeGreaterThan(15)
    expect(proxy.stats().upstreams[keyOf(b.url)]).toMatchObject({ open: b.connections, opened: b.connections, failedDials: 0, healthy: true })
  }, 20_000)

  it('without path: a WebSocket handshake check (a refused handshake takes it out)', async () => {
    const upstreams = await Promise.all([startHealthUpstream(), startHealthUpstream()])
    const [a, b] = upstreams as [typeof upstreams[0], typeof upstreams[0]]
    const { proxy, server } = await poolProxy(line, {
      target: upstreams.map(u => u.url),
      healthCheck: { interval: 200 },
      headers: { 'x-via': 'proxy' },
    })
    const health = () => upstreams.map(u => proxy.stats().upstreams[keyOf(u.url)]!.healthy)
    await waitFor(() => a.probes >= 1 && b.probes >= 1, { timeout: 2_000, label: 'first handshake checks' })
    expect(a.healthRequests + b.healthRequests).toBe(0)

    b.acceptsHandshakes = false
    await waitFor(() => !health()[1], { timeout: 1_500, label: 'b unhealthy', describe: health })
    const attemptsBefore = b.attempts
    const clients = await openMany(server.url, 20, { concurrency: 10 })
    await echoAll(clients)
    expect(b.attempts).toBe(attemptsBefore)
    expect(a.connections).toBe(20)

    b.acceptsHandshakes = true
    await waitFor(() => health()[1]!, { timeout: 1_500, label: 'b healthy again', describe: health })
    const more = await openMany(server.url, 20, { concurrency: 10 })
    await echoAll(more)
    expect(b.connections).toBe(20)
    // The probes close their own connections.
    await waitFor(() => b.connections === 20 && proxy.stats().upstreams[keyOf(b.url)]!.open === 20, { label: 'no probe counted' })
  }, 20_000)

  it('a resolver target with `upstreams`: registered and checked from the start; 302 passes, 500 fails', async () => {
    const upstreams = await Promise.all([startHealthUpstream(), startHealthUpstream()])
    const [a, b] = upstreams as [typeof upstreams[0], typeof upstreams[0]]
    const { proxy, server } = await poolProxy(line, {
      target: peer => [`${a.url}${new URL(peer.request.url).pathname}`, `${b.url}${new URL(peer.request.url).pathname}`],
      upstreams: [a.url, b.url],
      healthCheck: { interval: 200, path: '/healthz' },
      headers: { 'x-via': 'proxy' },
    })
    const health = () => upstreams.map(u => proxy.stats().upstreams[keyOf(u.url)]?.healthy)
    expect(Object.keys(proxy.stats().upstreams).sort()).toEqual([a.url, b.url].sort())
    // Checked before any connection.
    await waitFor(() => a.healthRequests >= 2 && b.healthRequests >= 2, { timeout: 2_000, label: 'checks before any connection' })
    expect(proxy.stats().opened).toBe(0)

    b.healthStatus = 302
    a.healthStatus = 500
    await waitFor(() => health()[0] === false, { timeout: 1_500, label: 'a out (500)', describe: health })
    await waitFor(() => b.healthRequests >= 4, { timeout: 1_500, label: 'b checked with 302' })
    expect(health()).toEqual([false, true])
    const clients = await openMany(`${server.url}/room`, 10, { concurrency: 10 })
    await echoAll(clients)
    expect([a.attempts, b.proxied]).toEqual([0, 10])
    // The resolver's URLs (with a path) count under the same upstream keys.
    expect(Object.keys(proxy.stats().upstreams)).toHaveLength(2)
    expect(proxy.stats().upstreams[b.url]).toMatchObject({ open: 10, opened: 10 })
  }, 20_000)
})
