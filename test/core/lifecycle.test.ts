/**
 * Lifecycle callbacks: `onUpstreamConnect` right before dialling, `onUpstreamOpen` after the
 * handshake, `onUpstreamClose` exactly once per connect, saying who ended the connection.
 */
import type { WebSocketProxyCloseDetails, WebSocketProxyOptions } from '../../src/core/types'
import { afterEach, describe, expect, it } from 'vitest'
import { CROSSWS_LINES, type TestClient, cleanup, refusedUrl, sleep, startHangingUpstream, startUpstream, waitFor, withTimeout, wsConnect } from '../helpers'
import { expectEcho, proxied } from './setup'

afterEach(() => cleanup())

describe.each(CROSSWS_LINES)('crossws %s: lifecycle callbacks', (line) => {
  /** A proxy recording every callback in order. */
  async function recorded(options: WebSocketProxyOptions) {
    const events: string[] = []
    const closes: WebSocketProxyCloseDetails[] = []
    const { proxy, server } = await proxied(line, {
      ...options,
      onUpstreamConnect: () => { events.push('connect') },
      onUpstreamOpen: () => { events.push('open') },
      onUpstreamClose: (_, details) => {
        events.push('close')
        closes.push(details)
      },
    })
    return { proxy, server, events, closes }
  }

  /** Waits for one onUpstreamClose, then a little longer to catch a second one. */
  async function closedOnce(closes: WebSocketProxyCloseDetails[], events: string[]) {
    await waitFor(() => closes.length > 0, { label: 'onUpstreamClose' })
    await sleep(100)
    expect(events.filter(e => e === 'close'), 'onUpstreamClose calls').toHaveLength(1)
    expect(events.filter(e => e === 'connect'), 'onUpstreamConnect calls').toHaveLength(1)
    return closes[0]!
  }

  it('onUpstreamConnect runs before dialling with the URL, onUpstreamOpen after the handshake', async () => {
    const upstream = await startUpstream()
    const target = `${upstream.url}/lifecycle?room=1`
    const seen: Array<{ event: string, url: string, isURL: boolean, handshakes: number, path: string }> = []
    const { server } = await proxied(line, {
      target,
      onUpstreamConnect: (peer, { url }) => {
        seen.push({ event: 'connect', url: url.href, isURL: url instanceof URL, handshakes: upstream.handshakes.length, path: new URL(peer.request.url).pathname })
      },
      onUpstreamOpen: (peer, { url }) => {
        seen.push({ event: 'open', url: url.href, isURL: url instanceof URL, handshakes: upstream.handshakes.length, path: new URL(peer.request.url).pathname })
      },
    })

    await expectEcho(await wsConnect(`${server.url}/client-path`), 'hi')

    expect(seen).toEqual([
      { event: 'connect', url: target, isURL: true, handshakes: 0, path: '/client-path' },
      { event: 'open', url: target, isURL: true, handshakes: 1, path: '/client-path' },
    ])
  })

  it('client closes: source "client"', async () => {
    const upstream = await startUpstream()
    const { server, events, closes } = await recorded({ target: upstream.url })
    const client = await wsConnect(server.url)
    await expectEcho(client, 'hi')

    await client.close(4001, 'bye')

    expect(await closedOnce(closes, events)).toMatchObject({ source: 'client', cause: 'client', code: 4001, reason: 'bye', url: new URL(upstream.url) })
    expect(events).toEqual(['connect', 'open', 'close'])
  })

  it('upstream closes: source "upstream"', async () => {
    const upstream = await startUpstream()
    const { server, events, closes } = await recorded({ target: upstream.url })
    const client = await wsConnect(server.url)
    await expectEcho(client, 'hi')

    upstream.connection().close(4000, 'done')

    expect(await closedOnce(closes, events)).toMatchObject({ source: 'upstream', cause: 'upstream', code: 4000, reason: 'done' })
    await withTimeout(client.closed, 1_000, 'client close')
  })

  it('connect timeout: source "proxy"', async () => {
    const hanging = await startHangingUpstream()
    const { server, events, closes } = await recorded({ target: hanging.url, connectTimeout: 100 })
    await wsConnect(server.url)

    expect(await closedOnce(closes, events)).toMatchObject({ source: 'proxy', cause: 'connect-timeout', code: 1011 })
    expect(events).toEqual(['connect', 'close'])
  })

  it('refused upstream: source "upstream", cause "upstream-error"', async () => {
    const { server, events, closes } = await recorded({ target: await refusedUrl() })
    await wsConnect(server.url)

    expect(await closedOnce(closes, events)).toMatchObject({ source: 'upstream', cause: 'upstream-error' })
    expect(events).toEqual(['connect', 'close'])
  })

  it('buffer limit: source "proxy", cause "buffer-limit"', async () => {
    const upstream = await startUpstream({ handshakeDelay: 200 })
    const { server, events, closes } = await recorded({ target: upstream.url, maxBufferSize: 10 })
    const client: TestClient = await wsConnect(server.url)
    client.send(Buffer.alloc(11))

    expect(await closedOnce(closes, events)).toMatchObject({ source: 'proxy', cause: 'buffer-limit', code: 1009 })
  })

  it('client idle: source "proxy", cause "client-idle"', async () => {
    const upstream = await startUpstream()
    const { server, events, closes } = await recorded({ target: upstream.url, clientIdleTimeout: 100 })
    await wsConnect(server.url)

    expect(await closedOnce(closes, events)).toMatchObject({ source: 'proxy', cause: 'client-idle', code: 1001 })
  })

  it('closeAll: source "proxy", cause "shutdown"', async () => {
    const upstream = await startUpstream()
    const { proxy, server, events, closes } = await recorded({ target: upstream.url })
    await expectEcho(await wsConnect(server.url), 'hi')

    await withTimeout(proxy.closeAll(), 2_000, 'closeAll')

    expect(await closedOnce(closes, events)).toMatchObject({ source: 'proxy', cause: 'shutdown' })
  })

  it('no onUpstreamClose when the target never resolved (no onUpstreamConnect)', async () => {
    const { server, events } = await recorded({ target: () => { throw new Error('no target') } })
    const client = await wsConnect(server.url)

    expect((await withTimeout(client.closed, 1_000, 'client close')).code).toBe(1011)
    await sleep(50)
    expect(events).toEqual([])
  })
})
