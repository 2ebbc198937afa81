/**
 * src/runtime/unmatched.ts on a real h3 1.15 app (the `websocket.resolve` nitropack 2 hands to
 * crossws 0.3): one router resolution per connection, one shared promise for every hook call of
 * that connection, no hooks served to another path, 404 hooks for paths no handler serves.
 * Message order through a real server: test/runtimes/presets.test.ts ("frames sent with the
 * upgrade request").
 */
import { createApp, createRouter, defineWebSocketHandler } from 'h3'
import { describe, expect, it } from 'vitest'
import resolveOncePerConnection from '../../src/runtime/unmatched'

type Hooks = Record<string, (...args: unknown[]) => unknown>

function setup() {
  const live = { upgrade: () => {}, open: () => {}, message: () => {} }
  const other = { open: () => {} }
  const app = createApp()
  const router = createRouter()
    .get('/live/**', defineWebSocketHandler(live))
    .get('/other', defineWebSocketHandler(other))
  app.use(router)
  const websocket = app.websocket as { resolve: (info: unknown) => unknown }
  // Count what reaches h3's own resolution (URL parse + router walk).
  const h3Resolve = websocket.resolve
  let routed = 0
  websocket.resolve = (info: unknown) => {
    routed++
    return h3Resolve(info)
  }
  resolveOncePerConnection({ h3App: app as never })
  return { resolve: websocket.resolve as (info: unknown) => Promise<Hooks>, live, other, routed: () => routed }
}

/** What crossws 0.3 passes: the upgrade request (absolute URL, context), then the peer. */
function connection(url: string) {
  const context = {}
  return {
    request: { url, context },
    peer: { request: { url }, context, send() {}, close() {} },
  }
}

describe('hooks resolved once per connection (nitropack 2, crossws 0.3)', () => {
  it('routes the upgrade once; open, messages and close get that very promise', async () => {
    const { resolve, live, routed } = setup()
    const { request, peer } = connection('http://127.0.0.1/live/room')
    const first = resolve(request)
    expect(first).toBeInstanceOf(Promise)
    const later = [resolve(peer), resolve(peer), resolve(peer), resolve(peer)]
    for (const promise of later) expect(promise).toBe(first)
    expect((await first).open).toBe(live.open)
    // Also once it settled: still the same promise, never a synchronous value.
    expect(resolve(peer)).toBe(first)
    expect(routed()).toBe(1)
  })

  it('runs a connection\'s hooks in call order when calls arrive while a resolution is pending', async () => {
    const { resolve } = setup()
    const { request, peer } = connection('http://127.0.0.1/live/order')
    const ran: string[] = []
    /** crossws 0.3.5's `AdapterHookable.callHook` (no global hooks), with the hook replaced by a log. */
    const callHook = (name: string, info: unknown, label: string) => {
      const resolved = resolve(info) as unknown
      const hook = resolved instanceof Promise ? resolved.then(hooks => hooks?.[name]) : (resolved as Hooks | undefined)?.[name]
      return Promise.all([undefined, hook]).then(([, found]) => {
        if (found) ran.push(label)
      })
    }
    await callHook('upgrade', request, 'upgrade')
    // A peer's open, then its messages one microtask apart (as a runtime that delivers socket
    // data from promise callbacks does): later calls start while earlier ones are still pending.
    const pending = [callHook('open', peer, 'open')]
    for (let i = 0; i < 40; i++) {
      await Promise.resolve()
      pending.push(callHook('message', peer, `message ${i}`))
    }
    await Promise.all(pending)
    expect(ran).toEqual(['upgrade', 'open', ...Array.from({ length: 40 }, (_, i) => `message ${i}`)])
  })

  it('keeps connections apart: each context gets its own route', async () => {
    const { resolve, live, other, routed } = setup()
    const a = connection('http://127.0.0.1/live/a')
    const b = connection('http://127.0.0.1/other')
    const [hooksA, hooksB] = await Promise.all([resolve(a.request), resolve(b.request)])
    expect(hooksA.open).toBe(live.open)
    expect(hooksB.open).toBe(other.open)
    expect(resolve(a.peer)).not.toBe(resolve(b.peer))
    expect(routed()).toBe(2)
  })

  it('never serves a route\'s hooks to another path sharing the context (resolved on its own, uncached)', async () => {
    const { resolve, live, other, routed } = setup()
    const context = {}
    const request = { url: 'http://127.0.0.1/live/x', context }
    expect((await resolve(request)).open).toBe(live.open)
    const stranger = { request: { url: 'http://127.0.0.1/other' }, context }
    expect((await resolve(stranger)).open).toBe(other.open)
    expect((await resolve(stranger)).open).toBe(other.open)
    expect(routed()).toBe(3)
    // The connection's own entry is untouched.
    expect((await resolve({ request: { url: 'http://127.0.0.1/live/x' }, context })).open).toBe(live.open)
    expect(routed()).toBe(3)
  })

  it('refuses an upgrade on a path no handler serves with 404', async () => {
    const { resolve } = setup()
    const { request } = connection('http://127.0.0.1/livex')
    const hooks = await resolve(request)
    const response = await hooks.upgrade!(request) as Response
    expect(response).toBeInstanceOf(Response)
    expect(response.status).toBe(404)
  })

  it('keys a call without a context object (an adapter with none) by the peer itself', async () => {
    const { resolve, live, routed } = setup()
    const peer = { request: { url: 'http://127.0.0.1/live/y' } }
    expect((await resolve(peer)).open).toBe(live.open)
    // Keyed by the peer itself: the same peer is routed once.
    expect(resolve(peer)).toBe(resolve(peer))
    expect(routed()).toBe(1)
  })

  it('never throws into the adapter when the request can no longer be read (rejects, as h3 alone does)', async () => {
    const { resolve } = setup()
    const closed = { get url(): string { throw new TypeError('Request closed') } }
    const peer = { request: closed, context: {}, send() {}, close() {} }
    let result: Promise<Hooks> | undefined
    expect(() => { result = resolve(peer) }).not.toThrow()
    await expect(result).rejects.toThrow('Request closed')
  })
})
