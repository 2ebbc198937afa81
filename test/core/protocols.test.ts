/**
 * Subprotocol negotiation: the client's offer goes upstream, the client gets exactly one
 * `sec-websocket-protocol` answer (crossws 0.3's ws server echoes by itself, 0.4's does not),
 * and names that are not RFC 7230 tokens are never echoed nor dialled.
 */
import { EventEmitter } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import { CROSSWS_LINES, cleanup, rawUpgrade, startUpstream, waitFor, withTimeout, wsConnect } from '../helpers'
import { createWebSocketProxy, expectEcho, isToken, proxied, splitProtocols } from './setup'

afterEach(() => cleanup())

describe.each(CROSSWS_LINES)('crossws %s: subprotocols', (line) => {
  it('forwards the offer upstream and answers exactly one sec-websocket-protocol', async () => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, { target: upstream.url })

    const answer = await rawUpgrade(`${server.url}/`, { 'Sec-WebSocket-Protocol': 'chat, superchat' })

    expect(answer.status).toBe(101)
    expect(answer.header('sec-websocket-protocol')).toEqual(['chat'])
    await waitFor(() => upstream.handshakes.length === 1, { label: 'upstream handshake' })
    expect(splitProtocols(upstream.lastHandshakeHeaders!['sec-websocket-protocol'])).toEqual(['chat', 'superchat'])
  })

  it('a ws client negotiates the first offer and relays', async () => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, { target: upstream.url })

    const client = await wsConnect(server.url, { protocols: ['v2.proto', 'v1.proto'] })

    expect(client.protocol).toBe('v2.proto')
    await expectEcho(client, 'over v2')
    expect(splitProtocols(upstream.lastHandshakeHeaders!['sec-websocket-protocol'])).toEqual(['v2.proto', 'v1.proto'])
  })

  it('without an offer, answers and dials no protocol', async () => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, { target: upstream.url })

    const answer = await rawUpgrade(`${server.url}/`)

    expect(answer.status).toBe(101)
    expect(answer.header('sec-websocket-protocol')).toEqual([])
    await waitFor(() => upstream.handshakes.length === 1, { label: 'upstream handshake' })
    expect(upstream.lastHandshakeHeaders!['sec-websocket-protocol']).toBeUndefined()
  })

  it('forwardProtocol: false dials no protocol and answers at most one', async () => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, { target: upstream.url, forwardProtocol: false })

    const answer = await rawUpgrade(`${server.url}/`, { 'Sec-WebSocket-Protocol': 'chat' })

    expect(answer.status).toBe(101)
    expect(answer.header('sec-websocket-protocol').length).toBeLessThanOrEqual(1)
    await waitFor(() => upstream.handshakes.length === 1, { label: 'upstream handshake' })
    expect(upstream.lastHandshakeHeaders!['sec-websocket-protocol']).toBeUndefined()
  })

  it.each(['chat, bad"name', 'bad"name, chat', 'chat, bad/name'])(
    'an offer with a non-token (%s) is never echoed nor dialled',
    async (offer) => {
      const upstream = await startUpstream()
      const { server } = await proxied(line, { target: upstream.url })

      const answer = await rawUpgrade(`${server.url}/`, { 'Sec-WebSocket-Protocol': offer })

      for (const value of answer.header('sec-websocket-protocol')) expect(isToken(value), value).toBe(true)
      if (answer.status === 101) await waitFor(() => upstream.handshakes.length === 1, { label: 'upstream handshake' })
      for (const { headers } of upstream.handshakes) {
        for (const name of splitProtocols(headers['sec-websocket-protocol'])) expect(isToken(name), name).toBe(true)
      }
      // The proxy stays usable.
      await expectEcho(await wsConnect(server.url, { protocols: 'ok' }), 'still fine')
    },
  )
})

/**
 * The node adapters' ws server already refuses malformed offers with 400, so the proxy's own
 * filtering is checked by driving its hooks directly, as an adapter that does not validate
 * (Bun, Deno, Cloudflare) would.
 */
describe('adapter-neutral: non-token subprotocols', () => {
  it.each(['bad"name, chat', 'chat, bad"name', 'chat, bad name, x{y}'])(
    '`upgrade` never echoes a non-token (%s)',
    async (offer) => {
      const proxy = createWebSocketProxy({ target: 'ws://127.0.0.1:1', WebSocket: class {} as any })
      const request = new Request('http://127.0.0.1/ws', { headers: { 'sec-websocket-protocol': offer } })

      const result: any = await proxy.upgrade(request as any)

      if (result instanceof Response) {
        expect(result.ok).toBe(false)
        return
      }
      const echoed = result?.headers ? new Headers(result.headers).get('sec-websocket-protocol') : null
      if (echoed !== null) expect(splitProtocols(echoed).every(isToken), echoed).toBe(true)
    },
  )

  it('the upstream is never dialled with a non-token', async () => {
    const dialled: unknown[] = []
    class RecordingWebSocket {
      constructor(_url: unknown, protocols?: string | string[]) {
        dialled.push(protocols)
        throw new Error('recorded')
      }
    }
    const proxy = createWebSocketProxy({ target: 'ws://127.0.0.1:1', WebSocket: RecordingWebSocket as any })
    const request = new Request('http://127.0.0.1/ws', { headers: { 'sec-websocket-protocol': 'bad"name, chat, x y' } })
    const closed: Array<[number | undefined, string | undefined]> = []
    const peer = fakePeer(request, (code, reason) => closed.push([code, reason]))

    await proxy.upgrade(request as any)
    proxy.open(peer as any)
    await withTimeout(waitFor(() => closed.length > 0 || dialled.length > 0), 1_000, 'dial attempt')

    for (const protocols of dialled) {
      const names = protocols === undefined ? [] : [protocols as string | string[]].flat()
      expect(names.every(isToken), JSON.stringify(names)).toBe(true)
    }
  })
})

/** A minimal peer with crossws's public surface over a raw-ws-like socket. */
function fakePeer(request: Request, onClose: (code?: number, reason?: string) => void) {
  const websocket = Object.assign(new EventEmitter(), { readyState: 1, protocol: '', bufferedAmount: 0, send() {}, close() {} })
  return {
    id: 'fake-peer',
    request,
    context: {},
    remoteAddress: '127.0.0.1',
    websocket,
    readyState: 1,
    send() {},
    close: onClose,
    terminate: () => onClose(1006),
  }
}
