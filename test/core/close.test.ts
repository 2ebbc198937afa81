/**
 * Close propagation: codes and reasons cross the proxy both ways; 1005 and 1006 (which only
 * describe a missing code or a dropped connection) are never put on the wire: the client gets
 * 1000 and 1011 instead. Reasons are cut to 123 UTF-8 bytes at a character boundary.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { CROSSWS_LINES, cleanup, rawUpgrade, startUpstream, usesWsCtor, waitFor, withTimeout, wsConnect } from '../helpers'
import { proxied } from './setup'

afterEach(() => cleanup())

describe.each(CROSSWS_LINES)('crossws %s: close propagation', (line) => {
  async function connected() {
    const upstream = await startUpstream()
    const { proxy, server } = await proxied(line, { target: upstream.url })
    const client = await wsConnect(server.url)
    client.send('open')
    await client.next() // the upstream is open (type fidelity is fidelity.test.ts's concern)
    return { upstream, proxy, server, client }
  }

  it.each([
    [4000, 'bye'],
    [1001, 'going away'],
    [1008, 'policy'],
    [3000, ''],
    [4999, 'ünïcödé 🌍'],
  ])('upstream close %i %j reaches the client', async (code, reason) => {
    const { client, upstream } = await connected()
    upstream.connection().close(code, reason || undefined)
    expect(await withTimeout(client.closed, 1_000, 'client close')).toMatchObject({ code, reason })
  })

  it('upstream close without a code reaches the client as 1000', async () => {
    const { client, upstream } = await connected()
    upstream.connection().close()
    expect(await withTimeout(client.closed, 1_000, 'client close')).toMatchObject({ code: 1000 })
    await waitFor(() => upstream.connections === 0, { label: 'upstream released' })
  })

  it('upstream dropping the connection (terminate) reaches the client as 1011', async () => {
    const { client, upstream } = await connected()
    upstream.connection().terminate()
    expect((await withTimeout(client.closed, 1_000, 'client close')).code).toBe(1011)
  })

  it('a 123-byte multibyte reason from the upstream arrives intact', async () => {
    const { client, upstream } = await connected()
    const reason = '€'.repeat(41) // 123 UTF-8 bytes, the most a close frame carries
    upstream.connection().close(4002, reason)
    expect(await withTimeout(client.closed, 1_000, 'client close')).toMatchObject({ code: 4002, reason })
  })

  it('client close 4001 "x" reaches the upstream', async () => {
    const { client, upstream } = await connected()
    await client.close(4001, 'x')
    await waitFor(() => upstream.closes.length === 1, { label: 'upstream close' })
    expect(upstream.closes[0]).toEqual({ code: 4001, reason: 'x' })
  })

  it(`client close 1001 reaches the upstream ${usesWsCtor ? 'as 1001' : 'as a normal close (WHATWG close() refuses 1001)'}`, async () => {
    const { client, upstream } = await connected()
    await client.close(1001, 'tab closed')
    await waitFor(() => upstream.closes.length === 1, { label: 'upstream close' })
    if (usesWsCtor) expect(upstream.closes[0]).toEqual({ code: 1001, reason: 'tab closed' })
    else expect([1000, 1005]).toContain(upstream.closes[0]!.code)
    expect(upstream.connections).toBe(0)
  })

  it('client close without a code closes the upstream without 1006', async () => {
    const { client, upstream } = await connected()
    await client.close()
    await waitFor(() => upstream.closes.length === 1, { label: 'upstream close' })
    expect([1000, 1005]).toContain(upstream.closes[0]!.code)
  })

  it('a client that drops its TCP connection gets its upstream closed with a close frame', async () => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, { target: upstream.url })
    const raw = await rawUpgrade(`${server.url}/`)
    expect(raw.status).toBe(101)
    await waitFor(() => upstream.connections === 1, { label: 'upstream open' })

    raw.socket.destroy()

    await waitFor(() => upstream.closes.length === 1, { label: 'upstream close' })
    expect(upstream.closes[0]!.code, 'a close frame, not a dropped connection').not.toBe(1006)
    expect(upstream.connections).toBe(0)
  })

  it.each([
    ['2-byte characters', 'é'.repeat(100), 'é'.repeat(61)],
    ['4-byte characters', '😀'.repeat(40), '😀'.repeat(30)],
    ['3-byte characters', '€'.repeat(60), '€'.repeat(41)],
  ])('closeAll cuts a long reason of %s to 123 bytes at a character boundary', async (_, long, expected) => {
    const { proxy, client, upstream } = await connected()

    await withTimeout(proxy.closeAll(1001, long, 500), 2_000, 'closeAll')

    const { code, reason } = await withTimeout(client.closed, 1_000, 'client close')
    expect(code).toBe(1001)
    expect(Buffer.byteLength(reason)).toBeLessThanOrEqual(123)
    expect(reason).toBe(expected)
    await waitFor(() => upstream.connections === 0, { label: 'upstream released' })
  })
})
