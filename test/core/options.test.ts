/**
 * `headers` and `webSocketOptions` reach the upstream constructor: `ws` takes them as its third
 * argument; Node's global (undici, `PROXY_UPSTREAM_CTOR=global`) takes headers in a
 * `{ protocols, headers }` dictionary. A standard WHATWG constructor cannot send them: there
 * they must be ignored without harm.
 */
import type { ProxyHeadersInit } from '../../src/core/types'
import { afterEach, describe, expect, it } from 'vitest'
import { CROSSWS_LINES, cleanup, startUpstream, usesWsCtor, wsConnect } from '../helpers'
import { expectEcho, proxied } from './setup'

afterEach(() => cleanup())

const headerForms: Array<[string, ProxyHeadersInit]> = [
  ['a plain object', { 'x-test': 'object' }],
  ['a Headers instance', new Headers({ 'x-test': 'headers' })],
  ['an array of pairs', [['x-test', 'pairs']]],
]

describe.each(CROSSWS_LINES)('crossws %s: headers', (line) => {
  it.each(headerForms)('headers as %s reach the upstream handshake', async (_, headers) => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, { target: upstream.url, headers })

    await expectEcho(await wsConnect(server.url), 'with headers')

    const expected = new Headers(headers).get('x-test')
    expect(upstream.lastHandshakeHeaders!['x-test']).toBe(expected)
  })

  it('headers as a function of the peer reach the upstream handshake', async () => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, {
      target: upstream.url,
      headers: peer => ({
        'x-forwarded-user': peer.request.headers.get('x-user') ?? '',
        'x-path': new URL(peer.request.url).pathname,
      }),
    })

    await expectEcho(await wsConnect(`${server.url}/room/1`, { headers: { 'x-user': 'alice' } }), 'with headers')

    const got = upstream.lastHandshakeHeaders!
    expect([got['x-forwarded-user'], got['x-path']]).toEqual(['alice', '/room/1'])
  })

  if (!usesWsCtor) {
    it('headers and subprotocols both reach the upstream through the global constructor', async () => {
      const upstream = await startUpstream()
      const { server } = await proxied(line, { target: upstream.url, headers: { 'x-test': 'dict' } })

      const client = await wsConnect(server.url, { protocols: ['p.one', 'p.two'] })
      await expectEcho(client, 'dict')

      const got = upstream.lastHandshakeHeaders!
      expect(got['x-test']).toBe('dict')
      expect(got['sec-websocket-protocol']).toBe('p.one, p.two')
    })

    it('a WHATWG constructor other than the runtime global gets no headers dictionary, and still relays', async () => {
      const upstream = await startUpstream()
      // A standard constructor would read a dictionary as a protocol name and throw.
      const Standard = class extends (globalThis.WebSocket as typeof WebSocket) {}
      const { server } = await proxied(line, { target: upstream.url, headers: { 'x-test': 'dropped' }, WebSocket: Standard as never })

      await expectEcho(await wsConnect(server.url), 'standard')
      expect(upstream.lastHandshakeHeaders!['x-test']).toBeUndefined()
    })
  }

  it('client request headers are not forwarded unless asked', async () => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, { target: upstream.url })

    await expectEcho(await wsConnect(server.url, { headers: { 'cookie': 'session=secret', 'x-user': 'alice' } }), 'plain')

    expect(upstream.lastHandshakeHeaders!.cookie).toBeUndefined()
    expect(upstream.lastHandshakeHeaders!['x-user']).toBeUndefined()
  })

  if (usesWsCtor) {
    it('the headers option overrides headers given in webSocketOptions', async () => {
      const upstream = await startUpstream()
      const { server } = await proxied(line, {
        target: upstream.url,
        headers: { 'x-test': 'from-headers' },
        webSocketOptions: { headers: { 'x-test': 'from-options', 'x-other': 'kept?' } },
      })

      await expectEcho(await wsConnect(server.url), 'both')

      expect(upstream.lastHandshakeHeaders!['x-test']).toBe('from-headers')
    })
  }
})

describe.each(CROSSWS_LINES)('crossws %s: webSocketOptions', (line) => {
  if (usesWsCtor) {
    it('by default the upstream leg offers no permessage-deflate (control)', async () => {
      const upstream = await startUpstream()
      const { server } = await proxied(line, { target: upstream.url })

      await expectEcho(await wsConnect(server.url), 'default')

      expect(upstream.lastHandshakeHeaders!['sec-websocket-extensions']).toBeUndefined()
    })

    it.each([
      ['an object', { perMessageDeflate: true }],
      ['a function of the peer', () => ({ perMessageDeflate: true })],
    ])('webSocketOptions as %s reaches the constructor', async (_, webSocketOptions) => {
      const upstream = await startUpstream()
      const { server } = await proxied(line, { target: upstream.url, webSocketOptions })

      await expectEcho(await wsConnect(server.url), 'deflate offered')

      expect(upstream.lastHandshakeHeaders!['sec-websocket-extensions']).toMatch(/permessage-deflate/)
    })
  }
  else {
    it('webSocketOptions are ignored by the WHATWG constructor without harm', async () => {
      const upstream = await startUpstream()
      const { server } = await proxied(line, { target: upstream.url, webSocketOptions: { perMessageDeflate: false } })

      await expectEcho(await wsConnect(server.url), 'ignored')
      expect(upstream.handshakes).toHaveLength(1)
    })
  }
})
