/**
 * Checks of the harness itself (no proxy involved), so a failing core test points at the proxy.
 */
import { connect } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import {
  CROSSWS_LINES,
  cleanup,
  rawUpgrade,
  refusedUrl,
  startHangingUpstream,
  startProxy,
  startUpstream,
  waitFor,
  withTimeout,
  wsConnect,
} from './index'

afterEach(() => cleanup())

describe('startUpstream', () => {
  it('echoes with the frame type and records what it received', async () => {
    const upstream = await startUpstream()
    const client = await wsConnect(`${upstream.url}/x`, { headers: { 'x-test': '1' } })
    client.send('héllo')
    client.send(Buffer.from('héllo'))
    expect(await client.next()).toMatchObject({ text: 'héllo', isBinary: false })
    expect(await client.next()).toMatchObject({ text: 'héllo', isBinary: true })
    expect(upstream.received.map(f => [f.text, f.isBinary])).toEqual([['héllo', false], ['héllo', true]])
    expect(upstream.handshakes[0]!.url).toBe('/x')
    expect(upstream.lastHandshakeHeaders!['x-test']).toBe('1')
    expect(upstream.connections).toBe(1)
  })

  it('obeys commands', async () => {
    const upstream = await startUpstream()
    const a = await wsConnect(upstream.url)
    a.send('send-binary:3')
    expect(await a.next()).toMatchObject({ isBinary: true, data: Buffer.from([0, 1, 2]) })
    a.send('send-text:ok')
    expect(await a.next()).toMatchObject({ isBinary: false, text: 'ok' })
    a.send('close:4000:bye:now')
    expect(await a.closed).toMatchObject({ code: 4000, reason: 'bye:now' })
    const b = await wsConnect(upstream.url)
    b.send('close')
    expect((await b.closed).code).toBe(1005)
    const c = await wsConnect(upstream.url)
    c.send('terminate')
    expect((await c.closed).code).toBe(1006)
    await waitFor(() => upstream.connections === 0)
  })

  it('rejects, delays, and picks protocols as told', async () => {
    const rejecting = await startUpstream({ reject: 403 })
    const answer = await rawUpgrade(`${rejecting.url}/`)
    expect(answer.status).toBe(403)
    expect(rejecting.handshakes).toHaveLength(1)

    const slow = await startUpstream({ handshakeDelay: 150, handleProtocols: () => 'b' })
    const started = Date.now()
    const client = await wsConnect(slow.url, { protocols: ['a', 'b'] })
    expect(Date.now() - started).toBeGreaterThanOrEqual(140)
    expect(client.protocol).toBe('b')
  })

  it('listens on a unix socket', async () => {
    const upstream = await startUpstream({ unixSocket: true })
    expect(upstream.url).toMatch(/^ws\+unix:/)
    const client = await wsConnect(`${upstream.url}/unix`)
    client.send('u')
    expect((await client.next()).text).toBe('u')
  })
})

describe('startHangingUpstream and refusedUrl', () => {
  it('accepts and never answers', async () => {
    const hanging = await startHangingUpstream()
    const ws = new WebSocket(hanging.url, { handshakeTimeout: 100 })
    ws.on('error', () => {})
    await waitFor(() => hanging.sockets === 1)
    await withTimeout(new Promise(resolve => ws.on('close', resolve)), 1000, 'handshake timeout')
    await waitFor(() => hanging.sockets === 0)
    expect(hanging.accepted).toBe(1)

    const idle = connect(Number(new URL(hanging.url).port), '127.0.0.1')
    await waitFor(() => hanging.idleSockets === 1)
    expect(hanging.sockets).toBe(0)
    idle.destroy()
    await waitFor(() => hanging.idleSockets === 0)
  })

  it('refuses', async () => {
    const ws = new WebSocket(await refusedUrl())
    const error = await withTimeout(new Promise<Error>(resolve => ws.on('error', resolve)), 1000, 'refusal')
    expect(error.message).toMatch(/ECONNREFUSED/)
  })
})

describe.each(CROSSWS_LINES)('startProxy (crossws %s)', (line) => {
  it('mounts hooks on the real adapter', async () => {
    const server = await startProxy({
      message: (peer: any, message: any) => peer.send(message.text()),
      upgrade: (request: Request) => request.headers.get('x-deny') ? new Response('no', { status: 401 }) : undefined,
    }, { crossws: line })
    const client = await wsConnect(`${server.url}/p`)
    client.send('ping')
    expect((await client.next()).text).toBe('ping')
    const denied = await rawUpgrade(`${server.url}/p`, { 'x-deny': '1' })
    expect(denied.status).toBe(401)
    expect(denied.body).toBe('no')
  })

  it('records errors thrown by the upgrade hook instead of leaking them', async () => {
    const server = await startProxy({ upgrade: () => { throw new Error('boom') } }, { crossws: line })
    await rawUpgrade(`${server.url}/`).catch(() => {})
    if (line === '0.3') await waitFor(() => server.upgradeErrors.length === 1)
    else expect(server.upgradeErrors).toEqual([]) // 0.4 answers 500 itself
  })

  it('close terminates open clients', async () => {
    const server = await startProxy({}, { crossws: line })
    const client = await wsConnect(server.url)
    await server.close()
    expect((await withTimeout(client.closed, 1000, 'client close')).code).toBe(1006)
  })
})
