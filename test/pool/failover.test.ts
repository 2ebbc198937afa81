/**
 * Failover before open: a refused dial or a 5xx answer moves the connection to the next
 * upstream with the client's frames still queued (they arrive once, in order, only there); a
 * 4xx answer is the upstream's word and is not retried; with every upstream down the client
 * gets 1011 (or 502 with `upstreamFirst`).
 *
 * With a WHATWG upstream constructor (`PROXY_UPSTREAM_CTOR=global`) the proxy never sees the
 * handshake's status: every failed dial (refused, 5xx, 4xx alike) fails over to the next
 * upstream, `upstreamFirst` answers 502 instead of the upstream's status, and such failures are
 * counted in `failedDials` but not against passive health (only connect timeouts are): the
 * upstream stays `healthy` and keeps getting dials.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { CROSSWS_LINES, cleanup, rawUpgrade, refusedUrl, startUpstream, usesWsCtor, waitFor, withTimeout, wsConnect } from '../helpers'
import { keyOf, poolProxy, startRefusingUpstream } from './harness'

afterEach(() => cleanup())

/** Three text and three binary frames, interleaved, with distinct payloads. */
const FRAMES: Array<[string | Buffer, boolean]> = [
  ['first text', false],
  [Buffer.from([1, 2, 3, 0xFF]), true],
  ['second text: é', false],
  [Buffer.alloc(2_000, 7), true],
  ['third text', false],
  [Buffer.from('binary that looks like text'), true],
]

describe.each(CROSSWS_LINES)('failover on crossws %s', (line) => {
  const firstTries = [
    { name: 'refuses (closed port)', start: async () => ({ url: await refusedUrl(), handshakes: () => 0, extraBytes: () => 0 }) },
    {
      name: 'answers 503 after 150 ms',
      start: async () => {
        const failing = await startRefusingUpstream(503, 150)
        return { url: failing.url, handshakes: () => failing.handshakes, extraBytes: () => failing.extraBytes }
      },
    },
  ]

  it.each(firstTries)('the first upstream $name: frames sent right after open arrive once, in order, at the next', async ({ start }) => {
    const bad = await start()
    // The good upstream is slow to answer too, so every frame is queued while the proxy dials.
    const good = await startUpstream({ handshakeDelay: 100 })
    const bystander = await startUpstream()
    const { proxy, server } = await poolProxy(line, { target: [bad.url, good.url, bystander.url], balance: 'round-robin' })
    const client = await wsConnect(`${server.url}/room`)
    for (const [data, binary] of FRAMES) client.send(data, binary)

    for (const [data, binary] of FRAMES) {
      const echoed = await client.next(3_000)
      expect(echoed.isBinary).toBe(binary)
      expect(echoed.data.equals(Buffer.from(data))).toBe(true)
    }
    expect(good.received.map(f => [f.isBinary, f.data.toString('hex')])).toEqual(FRAMES.map(([data, binary]) => [binary, Buffer.from(data).toString('hex')]))
    expect(good.handshakes).toHaveLength(1)
    expect(bystander.handshakes).toEqual([])
    expect(bystander.received).toEqual([])
    expect(bad.extraBytes()).toBe(0)
    const stats = proxy.stats()
    expect(stats.upstreams[keyOf(bad.url)]).toMatchObject({ failedDials: 1, opened: 0, open: 0 })
    expect(stats.upstreams[keyOf(good.url)]).toMatchObject({ failedDials: 0, opened: 1, open: 1 })
    expect(stats.messages.toUpstream).toBe(FRAMES.length)
    // Nothing more arrives anywhere later.
    await new Promise(resolve => setTimeout(resolve, 100))
    expect(good.received).toHaveLength(FRAMES.length)
    expect(client.messages).toHaveLength(FRAMES.length)
  }, 15_000)

  it.each([401, 403, 404])(usesWsCtor
    ? '%i is not retried: the client gets 1011, the next upstream sees no handshake'
    : 'WHATWG upstream: %i is retried on the next upstream (the client gets in); the refusing one stays healthy and is dialled again', async (status) => {
    const refusing = await startUpstream({ reject: status })
    const other = await startUpstream()
    const { proxy, server } = await poolProxy(line, { target: [refusing.url, other.url] })
    const client = await wsConnect(server.url)
    if (usesWsCtor) {
      const closed = await withTimeout(client.closed, 2_000, 'client close')
      expect(closed.code).toBe(1011)
      expect(refusing.handshakes).toHaveLength(1)
      expect(other.handshakes).toHaveLength(0)
      // The upstream is alive and said no: its health is not touched.
      expect(proxy.stats().upstreams[refusing.url]).toEqual({ open: 0, opened: 0, failedDials: 0, healthy: true })
      expect(proxy.stats().closed['upstream-error']).toBe(1)
      return
    }
    // No status to read: the refusal looks like a dead upstream, so the client fails over.
    client.send('after a refusal')
    expect((await client.next(3_000)).text).toBe('after a refusal')
    expect(refusing.handshakes).toHaveLength(1)
    expect(other.handshakes).toHaveLength(1)
    // Counted as a failed dial, not against health.
    expect(proxy.stats().upstreams[refusing.url]).toEqual({ open: 0, opened: 0, failedDials: 1, healthy: true })
    expect(proxy.stats().closed['upstream-error']).toBe(0)
    // Still in service: the next client (fewest connections there) is dialled to it again.
    const second = await wsConnect(server.url)
    second.send('again')
    expect((await second.next(3_000)).text).toBe('again')
    expect(refusing.handshakes).toHaveLength(2)
    expect(other.handshakes).toHaveLength(2)
    expect(proxy.stats().upstreams[refusing.url]).toEqual({ open: 0, opened: 0, failedDials: 2, healthy: true })
    expect(proxy.stats().upstreams[other.url]).toMatchObject({ open: 2, opened: 2, failedDials: 0, healthy: true })
  })

  it.each([401, 403, 404])(usesWsCtor
    ? 'upstreamFirst: %i is passed to the client, the next upstream sees no handshake'
    : 'WHATWG upstream, upstreamFirst: %i is retried on the next upstream (101); when every upstream refuses, 502', async (status) => {
    const refusing = await startUpstream({ reject: status })
    const other = await startUpstream()
    const { server } = await poolProxy(line, { target: [refusing.url, other.url], upstreamFirst: true })
    const answer = await rawUpgrade(server.url)
    expect(refusing.handshakes).toHaveLength(1)
    if (usesWsCtor) {
      expect(answer.status).toBe(status)
      expect(other.handshakes).toHaveLength(0)
    }
    else {
      expect(answer.status).toBe(101)
      expect(other.handshakes).toHaveLength(1)
      await waitFor(() => other.connections === 1, { label: 'upstream-first connection open' })
    }

    // Every upstream refuses: ws passes the first refusal on; a WHATWG dial cannot see it (502).
    const both = [await startUpstream({ reject: status }), await startUpstream({ reject: status })]
    const allRefuse = await poolProxy(line, { target: both.map(u => u.url), upstreamFirst: true })
    const refused = await rawUpgrade(allRefuse.server.url)
    expect(refused.status).toBe(usesWsCtor ? status : 502)
    expect(both.map(u => u.handshakes.length)).toEqual(usesWsCtor ? [1, 0] : [1, 1])
    expect(Object.values(allRefuse.proxy.stats().upstreams).map(u => [u.failedDials, u.healthy])).toEqual(usesWsCtor ? [[0, true], [0, true]] : [[1, true], [1, true]])
  })

  it(usesWsCtor
    ? 'clients refused with 401 do not take the pool out of service for the others'
    : 'WHATWG upstream: clients refused with 401 are retried on every upstream, yet do not take the pool out of service for the others', async () => {
    const reject = (request: { url?: string }) => request.url?.startsWith('/denied') ? 401 : undefined
    const a = await startUpstream({ reject })
    const b = await startUpstream({ reject })
    const { proxy, server } = await poolProxy(line, {
      target: peer => [a.url, b.url].map(url => `${url}${new URL(peer.request.url).pathname}`),
      failTimeout: 60_000,
    })
    for (let i = 0; i < 3; i++) {
      const denied = await wsConnect(`${server.url}/denied`)
      expect((await withTimeout(denied.closed, 2_000, 'denied close')).code).toBe(1011)
    }
    // A client the upstreams accept still gets in.
    const allowed = await wsConnect(`${server.url}/allowed`)
    allowed.send('in')
    const answer = await Promise.race([allowed.next(2_000).then(m => m.text), allowed.closed.then(c => `closed ${c.code} ${c.reason}`)])
    expect(answer, `stats: ${JSON.stringify(proxy.stats().upstreams)}`).toBe('in')
    if (usesWsCtor) {
      // One handshake per denied client: no retry, no failed dial.
      expect(a.handshakes.length + b.handshakes.length).toBe(4)
      expect(Object.values(proxy.stats().upstreams).map(u => [u.failedDials, u.healthy])).toEqual([[0, true], [0, true]])
    }
    else {
      // WHATWG: each denied client is tried on both upstreams (failed dials, not counted against
      // health), then gets 1011; both stay in service.
      expect(a.handshakes.length + b.handshakes.length).toBe(7)
      expect(Object.values(proxy.stats().upstreams).map(u => [u.failedDials, u.healthy])).toEqual([[3, true], [3, true]])
    }
  })

  it('503 is retried on the next upstream (default and upstreamFirst)', async () => {
    const failing = await startUpstream({ reject: 503 })
    const other = await startUpstream()
    const { proxy, server } = await poolProxy(line, { target: [failing.url, other.url] })
    const client = await wsConnect(server.url)
    client.send('after a 503')
    expect((await client.next()).text).toBe('after a 503')
    expect(failing.handshakes).toHaveLength(1)
    expect(other.handshakes).toHaveLength(1)
    // ws: a 5xx counts against health (maxFails 1: out). WHATWG: a failed dial without a status
    // only counts in failedDials; the upstream stays in service.
    expect(proxy.stats().upstreams[failing.url]).toMatchObject({ failedDials: 1, healthy: !usesWsCtor })

    const failing2 = await startUpstream({ reject: 503 })
    const other2 = await startUpstream()
    const first = await poolProxy(line, { target: [failing2.url, other2.url], upstreamFirst: true })
    const answer = await rawUpgrade(first.server.url)
    expect(answer.status).toBe(101)
    expect(failing2.handshakes).toHaveLength(1)
    expect(other2.handshakes).toHaveLength(1)
    await waitFor(() => other2.connections === 1, { label: 'upstream-first connection open' })
  })

  it(usesWsCtor
    ? 'all upstreams down: 1011 in default mode, 502 with upstreamFirst (dialled, then out of service)'
    : 'WHATWG upstream, all upstreams down: 1011 in default mode, 502 with upstreamFirst (every one dialled for each client, all stay healthy)', async () => {
    const targets = [await refusedUrl(), await refusedUrl(), await refusedUrl()]
    const { proxy, server } = await poolProxy(line, { target: targets, failTimeout: 60_000 })
    // First client: every upstream is dialled and refuses.
    const first = await wsConnect(server.url)
    expect((await withTimeout(first.closed, 2_000, 'first close')).code).toBe(1011)
    // ws: refused dials count against health (out of service). WHATWG: only counted as failed dials.
    expect(Object.values(proxy.stats().upstreams).map(u => [u.failedDials, u.healthy])).toEqual(Array(3).fill([1, !usesWsCtor]))
    // Second client: ws: none is in service any more, nothing is dialled; WHATWG: each is dialled again.
    const second = await wsConnect(server.url)
    const closed = await withTimeout(second.closed, 2_000, 'second close')
    expect(closed.code).toBe(1011)
    expect(Object.values(proxy.stats().upstreams).map(u => [u.failedDials, u.healthy])).toEqual(Array(3).fill(usesWsCtor ? [1, false] : [2, true]))

    const targets2 = [await refusedUrl(), await refusedUrl()]
    const firstMode = await poolProxy(line, { target: targets2, upstreamFirst: true, failTimeout: 60_000 })
    expect((await rawUpgrade(firstMode.server.url)).status).toBe(502)
    expect((await rawUpgrade(firstMode.server.url)).status).toBe(502)
    expect(Object.values(firstMode.proxy.stats().upstreams).map(u => [u.failedDials, u.healthy])).toEqual(Array(2).fill(usesWsCtor ? [1, false] : [2, true]))
  })
})
