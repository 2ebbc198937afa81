/**
 * Ways to name the upstream (string, URL, sync or async resolver, `ws+unix:`) and which
 * constructor dials it.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { CROSSWS_LINES, WsWebSocket, captureUnhandledRejections, cleanup, sleep, startProxy, startUpstream, usesWsCtor, waitFor, withTimeout, wsConnect } from '../helpers'
import { createWebSocketProxy, expectEcho, proxied } from './setup'

afterEach(async () => {
  vi.unstubAllGlobals()
  await cleanup()
})

describe.each(CROSSWS_LINES)('crossws %s: targets', (line) => {
  it.each([
    ['a string', (url: string) => url],
    ['a URL', (url: string) => new URL(url)],
    ['a sync function', (url: string) => () => url],
    ['a sync function returning a URL', (url: string) => () => new URL(url)],
    ['an async function', (url: string) => async () => { await sleep(5); return url }],
  ] as const)('target as %s', async (_, makeTarget) => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, { target: makeTarget(`${upstream.url}/backend?x=1`) })
    const client = await wsConnect(server.url)

    await expectEcho(client, 'hello')
    expect(upstream.handshakes.map(h => h.url)).toEqual(['/backend?x=1'])
  })

  it('a resolver receives the peer and can route by path', async () => {
    const a = await startUpstream()
    const b = await startUpstream()
    const seen: string[] = []
    const { server } = await proxied(line, {
      target: (peer) => {
        const { pathname } = new URL(peer.request.url)
        seen.push(pathname)
        return pathname === '/a' ? a.url : b.url
      },
    })

    await expectEcho(await wsConnect(`${server.url}/a`), 'to a')
    await expectEcho(await wsConnect(`${server.url}/b`), 'to b')

    expect(seen).toEqual(['/a', '/b'])
    expect([a.handshakes.length, b.handshakes.length]).toEqual([1, 1])
  })

  if (usesWsCtor) {
    it('ws+unix: target through the ws constructor', async () => {
      const upstream = await startUpstream({ unixSocket: true })
      const { server } = await proxied(line, { target: `${upstream.url}/over-unix` })
      const client = await wsConnect(server.url)

      await expectEcho(client, 'via unix socket')
      expect(upstream.handshakes.map(h => h.url)).toEqual(['/over-unix'])
    })
  }
  else {
    it('ws+unix: target with the WHATWG constructor closes the client with 1011', async () => {
      const rejections = captureUnhandledRejections()
      const upstream = await startUpstream({ unixSocket: true })
      const { server } = await proxied(line, { target: `${upstream.url}/over-unix` })
      const client = await wsConnect(server.url)

      expect((await withTimeout(client.closed, 1_000, 'client close')).code).toBe(1011)
      expect(upstream.handshakes).toHaveLength(0)
      expect(rejections).toEqual([])
    })
  }

  it.each([
    ['a string', (url: string) => url],
    ['a URL', (url: string) => new URL(url)],
    ['a function', (url: string) => () => url],
  ] as const)('shorthand createWebSocketProxy(%s) dials with the global WebSocket', async (_, makeTarget) => {
    if (usesWsCtor) vi.stubGlobal('WebSocket', WsWebSocket)
    const upstream = await startUpstream()
    const proxy = createWebSocketProxy(makeTarget(`${upstream.url}/short`) as any)
    const server = await startProxy(proxy, { crossws: line })

    await expectEcho(await wsConnect(server.url), 'short')
    expect(upstream.handshakes.map(h => h.url)).toEqual(['/short'])
  })
})

describe('WebSocket constructor', () => {
  it('without the option and without a global, setup throws a TypeError naming the remedy', () => {
    vi.stubGlobal('WebSocket', undefined)
    let error: unknown
    try {
      createWebSocketProxy({ target: 'ws://127.0.0.1:1' })
    }
    catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(TypeError)
    expect((error as Error).message).toMatch(/WebSocket/)
    expect((error as Error).message).toMatch(/option|\bws\b/i)
  })

  it('the WebSocket option wins over the global', async () => {
    const dialled: string[] = []
    class Recording extends (WsWebSocket as any) {
      constructor(url: string | URL, ...rest: unknown[]) {
        dialled.push(String(url))
        super(url, ...rest)
      }
    }
    vi.stubGlobal('WebSocket', class {
      constructor() { throw new Error('the global must not be used') }
    })
    const upstream = await startUpstream()
    const proxy = createWebSocketProxy({ target: upstream.url, WebSocket: Recording as any })
    const server = await startProxy(proxy, { crossws: '0.4' })

    await expectEcho(await wsConnect(server.url), 'custom')
    await waitFor(() => dialled.length === 1)
    expect(dialled[0]).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/?$/)
  })
})
