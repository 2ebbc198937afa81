/**
 * `balance: 'hash'` (rendezvous): the same key lands on the same upstream across reconnects,
 * keys spread over every upstream, taking one upstream away moves only the keys it held, and a
 * connection without a key falls back to least-connections. Keys: the user in the connection's
 * context (set by a wrapped `upgrade`), a header, a query parameter, a cookie, the client IP.
 */
import type { ProxyPeer, WebSocketProxyHashKey } from '../../src/core/types'
import { afterEach, describe, expect, it } from 'vitest'
import { hashKeyOf, UpstreamPool, userKey } from '../../src/core/pool'
import { CROSSWS_LINES, cleanup, startUpstream, waitFor, wsConnect } from '../helpers'
import { keyOf, openMany, poolProxy } from './harness'

afterEach(() => cleanup())

/** A peer-like object for the pool's own functions (no socket). */
function fakePeer({ user, headers = {}, url = 'http://proxy.test/ws', remoteAddress }: { user?: unknown, headers?: Record<string, string>, url?: string, remoteAddress?: string } = {}): ProxyPeer {
  return { request: new Request(url, { headers }), context: user === undefined ? {} : { user }, remoteAddress } as ProxyPeer
}

/** Where each of `keys` goes in a hash pool of `urls` (through the pool's own `pick`). */
function assign(urls: string[], keys: number[], down: string[] = []): Map<number, string> {
  const pool = new UpstreamPool({ balance: 'hash', hashKey: 'user', maxFails: 1, failTimeout: 60_000, healthCheck: undefined }, async () => true)
  const candidates = urls.map(url => new URL(url))
  const states = candidates.map(url => pool.register(url))
  for (const state of states) if (down.includes(state.key)) pool.failed(state)
  const result = new Map<number, string>()
  for (const key of keys) {
    const index = pool.pick(candidates, states, 0, fakePeer({ user: { id: key } }))
    result.set(key, states[index]!.key)
  }
  return result
}

describe('rendezvous hashing (the pool itself)', () => {
  const four = ['ws://127.0.0.1:4001', 'ws://127.0.0.1:4002/a', 'ws://127.0.0.1:4003/b', 'ws://127.0.0.1:4004']
  const keys = Array.from({ length: 1_000 }, (_, i) => i + 1)

  it('1,000 keys over 4 upstreams: each gets a fair share; removing one moves only the keys it held', () => {
    const before = assign(four, keys)
    const shares = four.map(url => [...before.values()].filter(k => k === keyOf(url)).length)
    console.info(`[pool] hash: 1,000 keys over 4 upstreams: ${shares.join('/')}`)
    for (const share of shares) {
      expect(share).toBeGreaterThan(180)
      expect(share).toBeLessThan(320)
    }
    // Same result on another instance with the same upstreams, listed in another order.
    expect(assign([...four].reverse(), keys)).toEqual(before)

    for (const removed of four) {
      const rest = four.filter(url => url !== removed)
      const after = assign(rest, keys)
      let moved = 0
      for (const key of keys) {
        if (before.get(key) === keyOf(removed)) {
          moved++
          expect(after.get(key)).not.toBe(keyOf(removed))
        }
        else {
          expect(after.get(key), `key ${key}`).toBe(before.get(key))
        }
      }
      expect(moved).toBe(shares[four.indexOf(removed)])
      // Out of service (passive health) instead of removed: the same keys move, the same way.
      expect(assign(four, keys, [keyOf(removed)])).toEqual(after)
    }
  })

  it('hashKeyOf reads each kind of key; a missing one is undefined', () => {
    const peer = fakePeer({
      user: { id: 7, email: 'x@y' },
      headers: { 'x-tenant': 'acme', 'cookie': 'a=1; sid=s3cr3t; b=2' },
      url: 'http://proxy.test/ws?room=lobby&x=1',
      remoteAddress: '10.1.2.3',
    })
    expect(hashKeyOf('user', peer)).toBe('7')
    expect(hashKeyOf('header:x-tenant', peer)).toBe('acme')
    expect(hashKeyOf('query:room', peer)).toBe('lobby')
    expect(hashKeyOf('cookie:sid', peer)).toBe('s3cr3t')
    expect(hashKeyOf('ip', peer)).toBe('10.1.2.3')
    expect(hashKeyOf(p => (p.context.user as { id: number }).id * 2, peer)).toBe('14')
    const empty = fakePeer()
    for (const key of ['user', 'header:x-tenant', 'query:room', 'cookie:sid', 'ip'] as const) expect(hashKeyOf(key, empty)).toBeUndefined()
    expect(hashKeyOf('cookie:sid', fakePeer({ headers: { cookie: 'sid=' } }))).toBeUndefined()
    expect(userKey({ sub: 'abc' })).toBe('abc')
    expect(userKey('u1')).toBe('u1')
  })
})

describe.each(CROSSWS_LINES)('hash balancing on crossws %s', (line) => {
  /** A hash proxy over `count` upstreams that records, per connection, its key and where it went. */
  async function hashRig(count: number, hashKey: WebSocketProxyHashKey, upstreamUrls?: string[]) {
    const upstreams = upstreamUrls ? [] : await Promise.all(Array.from({ length: count }, () => startUpstream()))
    const urls = upstreamUrls ?? upstreams.map(u => u.url)
    const placed: Array<{ key: string | undefined, origin: string }> = []
    const { proxy, server } = await poolProxy(line, {
      target: urls,
      balance: 'hash',
      hashKey,
      onUpstreamOpen: (peer, { url }) => placed.push({ key: hashKeyOf(hashKey, peer), origin: keyOf(url.href) }),
    }, {
      context: (request) => {
        const id = new URL(request.url).searchParams.get('user')
        return id === null ? undefined : { user: { id: Number(id) } }
      },
    })
    return { upstreams, urls, proxy, server, placed }
  }

  it('user: 100 reconnects of one user hit one upstream; 60 users spread over all three', async () => {
    const { upstreams, server, placed } = await hashRig(3, 'user')
    for (let round = 0; round < 10; round++) {
      const clients = await openMany(`${server.url}/?user=42`, 10, { concurrency: 10 })
      await Promise.all(clients.map(client => client.close(1000)))
    }
    await waitFor(() => placed.length === 100, { label: '100 placed' })
    expect(new Set(placed.map(p => p.key))).toEqual(new Set(['42']))
    const origins = new Set(placed.map(p => p.origin))
    expect(origins.size).toBe(1)
    // The pool's own pick agrees on where user 42 goes.
    expect([...origins][0]).toBe(assign(upstreams.map(u => u.url), [42]).get(42))

    placed.length = 0
    const users = Array.from({ length: 60 }, (_, i) => i + 100)
    await openMany(i => `${server.url}/?user=${users[i]}`, users.length, { concurrency: 30 })
    await waitFor(() => placed.length === 60, { label: '60 placed' })
    const perUpstream = upstreams.map(u => placed.filter(p => p.origin === u.url).length)
    console.info(`[pool] hash user (crossws ${line}): 60 users went ${perUpstream.join('/')}`)
    expect(perUpstream.every(n => n > 0)).toBe(true)
    const expected = assign(upstreams.map(u => u.url), users)
    for (const p of placed) expect(p.origin).toBe(expected.get(Number(p.key)))
  }, 20_000)

  it('4 upstreams, one taken away: a sample of 60 users over real connections moves only its users', async () => {
    const upstreams = await Promise.all(Array.from({ length: 4 }, () => startUpstream()))
    const urls = upstreams.map(u => u.url)
    const users = Array.from({ length: 60 }, (_, i) => i * 7 + 3)
    const where = async (targets: string[]) => {
      const rig = await hashRig(targets.length, 'user', targets)
      await openMany(i => `${rig.server.url}/?user=${users[i]}`, users.length, { concurrency: 30 })
      await waitFor(() => rig.placed.length === users.length, { label: 'all placed' })
      return new Map(rig.placed.map(p => [Number(p.key), p.origin]))
    }
    const before = await where(urls)
    const removed = urls[1]!
    const after = await where(urls.filter(url => url !== removed))
    let moved = 0
    for (const user of users) {
      if (before.get(user) === removed) moved++
      else expect(after.get(user), `user ${user}`).toBe(before.get(user))
    }
    console.info(`[pool] hash removal (crossws ${line}): ${moved} of 60 users were on the removed upstream and moved; the other ${60 - moved} stayed`)
    expect(moved).toBeGreaterThan(0)
    expect([...after.values()]).not.toContain(removed)
  }, 20_000)

  const kinds: Array<{ hashKey: WebSocketProxyHashKey, connect: (server: string, key: string) => Promise<unknown> }> = [
    { hashKey: 'header:x-tenant', connect: (server, key) => wsConnect(server, { headers: { 'x-tenant': key } }) },
    { hashKey: 'query:room', connect: (server, key) => wsConnect(`${server}/?room=${key}&n=${Math.random()}`) },
    { hashKey: 'cookie:sid', connect: (server, key) => wsConnect(server, { headers: { cookie: `theme=dark; sid=${key}; x=y` } }) },
  ]

  it.each(kinds)('$hashKey: one key sticks to one upstream, 30 keys use all three', async ({ hashKey, connect }) => {
    const { server, upstreams, placed } = await hashRig(3, hashKey)
    for (let i = 0; i < 8; i++) await connect(server.url, 'k-one')
    await waitFor(() => placed.length === 8, { label: '8 placed' })
    expect(placed.map(p => p.key)).toEqual(Array(8).fill('k-one'))
    expect(new Set(placed.map(p => p.origin)).size).toBe(1)

    placed.length = 0
    await Promise.all(Array.from({ length: 30 }, (_, i) => connect(server.url, `key-${i}`)))
    await waitFor(() => placed.length === 30, { label: '30 placed' })
    const perUpstream = upstreams.map(u => placed.filter(p => p.origin === u.url).length)
    expect(perUpstream.every(n => n > 0)).toBe(true)
    // The same key twice goes to the same place.
    const firstPlace = new Map(placed.map(p => [p.key, p.origin]))
    placed.length = 0
    await Promise.all(Array.from({ length: 30 }, (_, i) => connect(server.url, `key-${i}`)))
    await waitFor(() => placed.length === 30, { label: '30 placed again' })
    for (const p of placed) expect(p.origin).toBe(firstPlace.get(p.key))
  }, 20_000)

  it('ip: every connection from 127.0.0.1 goes to one upstream', async () => {
    const { server, placed } = await hashRig(3, 'ip')
    await openMany(server.url, 30, { concurrency: 15 })
    await waitFor(() => placed.length === 30, { label: '30 placed' })
    expect(placed[0]!.key).toMatch(/^(?:::ffff:)?127\.0\.0\.1$/)
    expect(new Set(placed.map(p => p.key)).size).toBe(1)
    expect(new Set(placed.map(p => p.origin)).size).toBe(1)
  })

  it('a missing key falls back to least-connections (30 keyless connections: 10/10/10)', async () => {
    const { server, upstreams, proxy, placed } = await hashRig(3, 'header:x-tenant')
    await openMany(server.url, 30, { concurrency: 10 })
    await waitFor(() => placed.length === 30, { label: '30 placed' })
    expect(placed.every(p => p.key === undefined)).toBe(true)
    expect(upstreams.map(u => u.connections)).toEqual([10, 10, 10])
    expect(upstreams.map(u => proxy.stats().upstreams[u.url]!.open)).toEqual([10, 10, 10])
  })
})
