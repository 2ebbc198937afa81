/**
 * The documented way to add authentication: spread the proxy and wrap its `upgrade`.
 */
import type { WebSocketProxy } from '../../src/core/types'
import { afterEach, describe, expect, it } from 'vitest'
import { CROSSWS_LINES, cleanup, rawUpgrade, sleep, startProxy, startUpstream, waitFor, wsConnect } from '../helpers'
import { createWebSocketProxy, expectEcho } from './setup'
import { ctorOption } from '../helpers'

afterEach(() => cleanup())

describe.each(CROSSWS_LINES)('crossws %s: spread-and-wrap upgrade for auth', (line) => {
  async function guarded(wrap: 'sync' | 'async') {
    const upstream = await startUpstream()
    const proxy: WebSocketProxy = createWebSocketProxy({ target: upstream.url, ...ctorOption() })
    const allowed = (request: Request) => request.headers.get('authorization') === 'Bearer ok'
    const hooks = wrap === 'sync'
      ? {
          ...proxy,
          upgrade(request: Request) {
            if (!allowed(request)) return new Response('no', { status: 401 })
            return proxy.upgrade(request as any)
          },
        }
      : {
          ...proxy,
          async upgrade(request: Request) {
            await sleep(5)
            if (!allowed(request)) return new Response('Unauthorized', { status: 401 })
            return proxy.upgrade(request as any)
          },
        }
    const server = await startProxy(hooks, { crossws: line })
    return { upstream, server }
  }

  it.each(['sync', 'async'] as const)('a %s wrapper answers 401 and the upstream never sees a connection', async (wrap) => {
    const { upstream, server } = await guarded(wrap)

    const answer = await rawUpgrade(`${server.url}/`, { 'Sec-WebSocket-Protocol': 'chat' })

    expect(answer.status).toBe(401)
    await sleep(100)
    expect(upstream.handshakes).toHaveLength(0)
    expect(server.upgradeErrors).toEqual([])
  })

  it.each(['sync', 'async'] as const)('through a %s wrapper, the allowed path echoes the subprotocol once and relays', async (wrap) => {
    const { upstream, server } = await guarded(wrap)

    const answer = await rawUpgrade(`${server.url}/`, { 'Authorization': 'Bearer ok', 'Sec-WebSocket-Protocol': 'chat, other' })
    expect(answer.status).toBe(101)
    expect(answer.header('sec-websocket-protocol')).toEqual(['chat'])
    await waitFor(() => upstream.handshakes.length === 1, { label: 'upstream handshake' })

    const client = await wsConnect(server.url, { protocols: ['chat'], headers: { authorization: 'Bearer ok' } })
    expect(client.protocol).toBe('chat')
    await expectEcho(client, 'authorized')
  })
})
