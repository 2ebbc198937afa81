/**
 * Failures never escape a hook: each one closes only the affected client with 1011, quickly,
 * with no unhandled rejection and no error out of the adapter, while a healthy client on the
 * same proxy keeps working.
 */
import type { ProxyPeer, WebSocketConstructor, WebSocketProxyOptions } from '../../src/core/types'
import { afterEach, describe, expect, it } from 'vitest'
import { CROSSWS_LINES, WsWebSocket, captureUnhandledRejections, cleanup, refusedUrl, sleep, startUpstream, upstreamCtor, withTimeout, wsConnect } from '../helpers'
import { expectEcho, proxied } from './setup'

afterEach(() => cleanup())

const isBad = (peer: ProxyPeer) => new URL(peer.request.url).pathname === '/bad'

/** The constructor of this run, whichever mode, as a base class. */
const BaseCtor = (upstreamCtor === 'ws' ? WsWebSocket : globalThis.WebSocket) as unknown as new (...args: any[]) => object

interface Failure {
  name: string
  /** Options whose `/bad` connections fail and whose other connections reach `good`. */
  options: (good: string) => Promise<Omit<WebSocketProxyOptions, 'target'> & { target: WebSocketProxyOptions['target'] }>
}

const failures: Failure[] = [
  {
    name: 'a throwing resolver',
    options: async good => ({
      target: (peer) => {
        if (isBad(peer)) throw new Error('resolver failed')
        return good
      },
    }),
  },
  {
    name: 'a rejecting async target',
    options: async good => ({
      target: async (peer) => {
        await sleep(5)
        if (isBad(peer)) throw new Error('resolver rejected')
        return good
      },
    }),
  },
  {
    name: 'a resolver returning an invalid URL',
    options: async good => ({ target: peer => isBad(peer) ? 'not a url' : good }),
  },
  {
    name: 'a throwing constructor',
    options: async (good) => {
      class Throwing extends BaseCtor {
        constructor(url: string | URL, ...rest: any[]) {
          if (String(url).includes('/bad')) throw new Error('constructor failed')
          super(url, ...rest)
        }
      }
      return { target: peer => isBad(peer) ? `${good}/bad` : good, WebSocket: Throwing as unknown as WebSocketConstructor }
    },
  },
  {
    name: 'a refused upstream (closed port)',
    options: async (good) => {
      const refused = await refusedUrl()
      return { target: peer => isBad(peer) ? refused : good }
    },
  },
  {
    name: 'an upstream answering 403',
    options: async (good) => {
      const forbidding = await startUpstream({ reject: 403 })
      return { target: peer => isBad(peer) ? forbidding.url : good }
    },
  },
  {
    name: 'a throwing headers function',
    options: async good => ({
      target: good,
      headers: (peer) => {
        if (isBad(peer)) throw new Error('headers failed')
        return { 'x-ok': '1' }
      },
    }),
  },
  {
    name: 'a throwing onUpstreamConnect',
    options: async good => ({
      target: good,
      onUpstreamConnect: (peer) => {
        if (isBad(peer)) throw new Error('callback failed')
      },
    }),
  },
]

describe.each(CROSSWS_LINES)('crossws %s: failures', (line) => {
  it.each(failures)('$name closes only that client with 1011', async ({ options }) => {
    const rejections = captureUnhandledRejections()
    const upstream = await startUpstream()
    const { server } = await proxied(line, await options(upstream.url))
    const before = await wsConnect(`${server.url}/good`)
    await expectEcho(before, 'before')

    const bad = await wsConnect(`${server.url}/bad`)
    const opened = Date.now()
    const { code, at } = await withTimeout(bad.closed, 1_500, 'failed client close')

    expect(code).toBe(1011)
    expect(at - opened).toBeLessThan(1_000)
    await expectEcho(before, 'still there')
    const after = await wsConnect(`${server.url}/good`)
    await expectEcho(after, 'after')
    await sleep(20)
    expect(rejections).toEqual([])
    expect(server.upgradeErrors).toEqual([])
    expect(upstream.connections).toBe(2)
  })
})
