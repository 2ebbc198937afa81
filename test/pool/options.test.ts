/**
 * Pool options are checked at setup: each mistake throws a TypeError that names the field.
 */
import type { WebSocketProxyOptions } from '../../src/core/types'
import { afterEach, describe, expect, it } from 'vitest'
import { createWebSocketProxy } from '../../src/index'
import { cleanup, ctorOption, startProxy, wsConnect, withTimeout } from '../helpers'

afterEach(() => cleanup())

const ok = 'ws://127.0.0.1:1'
const make = (options: Partial<WebSocketProxyOptions>) => () => createWebSocketProxy({ target: ok, ...ctorOption(), ...options } as WebSocketProxyOptions)

const invalid: Array<[string, Partial<WebSocketProxyOptions>, RegExp]> = [
  ['an empty target list', { target: [] }, /`target` must list at least one upstream URL/],
  ['33 targets', { target: Array.from({ length: 33 }, (_, i) => `ws://127.0.0.1:${1000 + i}`) }, /`target` lists 33 upstreams; at most 32/],
  ['a non-URL entry', { target: [ok, 'not a url'] }, /`target\[1\]` must be an absolute ws:\/\/.*"not a url"/],
  ['a non-string entry', { target: [ok, ok, 42 as unknown as string] }, /`target\[2\]` must be a URL string or a URL, got number/],
  ['a bad balance', { balance: 'fastest' as never }, /`balance` must be one of 'least-connections', 'round-robin', 'random', 'hash', got "fastest"/],
  ['hash without hashKey', { balance: 'hash' }, /`hashKey` is required with balance 'hash'/],
  ['a bad hashKey', { balance: 'hash', hashKey: 'session' as never }, /`hashKey` must be 'user', 'ip', 'header:<name>'.*got "session"/],
  ['a hashKey kind without a name', { balance: 'hash', hashKey: 'header:' as never }, /`hashKey` must be/],
  ['healthCheck.interval missing', { healthCheck: {} as never }, /`healthCheck\.interval` must be a number of milliseconds >= 100, got undefined/],
  ['healthCheck.interval too small', { healthCheck: { interval: 10 } }, /`healthCheck\.interval` must be a number of milliseconds >= 100, got 10/],
  ['healthCheck.interval NaN', { healthCheck: { interval: Number.NaN } }, /`healthCheck\.interval`/],
  ['healthCheck.path without a slash', { healthCheck: { interval: 1_000, path: 'healthz' } }, /`healthCheck\.path` must be a path starting with '\/', got "healthz"/],
  ['healthCheck.path not a string', { healthCheck: { interval: 1_000, path: 5 as never } }, /`healthCheck\.path`/],
  ['healthCheck not an object', { healthCheck: 'yes' as never }, /`healthCheck` must be an object/],
  ['lifetimeClose code 1006', { lifetimeClose: [1006, 'x'] }, /`lifetimeClose` must be \[code, reason\?\] with code 1000, 1001, 1008, 1011 or 3000-4999, got \[1006,"x"\]/],
  ['lifetimeClose code 5000', { lifetimeClose: [5000] }, /`lifetimeClose` must be/],
  ['lifetimeClose not a list', { lifetimeClose: 4000 as never }, /`lifetimeClose` must be/],
  ['a negative maxFails', { maxFails: -1 }, /`maxFails` must be a non-negative number/],
  ['a NaN failTimeout', { failTimeout: Number.NaN }, /`failTimeout` must be a non-negative number of milliseconds/],
  ['a negative maxLifetime', { maxLifetime: -5 }, /`maxLifetime` must be a non-negative number/],
  ['a bad upstreams entry', { target: () => ok, upstreams: [ok, 'nope'] }, /`upstreams\[1\]` must be an absolute/],
]

describe('pool options', () => {
  it.each(invalid)('%s: TypeError naming the field', (_, options, message) => {
    expect(make(options)).toThrow(TypeError)
    expect(make(options)).toThrow(message)
  })

  it('accepts the documented forms', () => {
    expect(make({ target: Array.from({ length: 32 }, (_, i) => `ws://127.0.0.1:${1000 + i}`) })).not.toThrow()
    expect(make({ target: [ok, new URL('ws://127.0.0.1:2/x')], balance: 'round-robin' })).not.toThrow()
    for (const hashKey of ['user', 'ip', 'header:x-tenant', 'query:room', 'cookie:sid', () => 'k'] as const) {
      expect(make({ balance: 'hash', hashKey })).not.toThrow()
    }
    expect(make({ healthCheck: { interval: 100, path: '/healthz', timeout: 50 } })).not.toThrow()
    expect(make({ lifetimeClose: [4000, 'rotate'], maxLifetime: 1_000 })).not.toThrow()
    expect(make({ lifetimeClose: [1001] })).not.toThrow()
    expect(make({ maxFails: 0, failTimeout: 0 })).not.toThrow()
  })

  it('a resolver returning an invalid list closes that client with 1011 (checked per connection)', async () => {
    const proxy = createWebSocketProxy({ target: () => [ok, 'not a url'], ...ctorOption() })
    const server = await startProxy(proxy, { crossws: '0.3' })
    const client = await wsConnect(server.url)
    expect((await withTimeout(client.closed, 2_000, 'close')).code).toBe(1011)
    expect(proxy.stats().closed['setup-failed']).toBe(1)
  })
})
