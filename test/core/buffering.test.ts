/**
 * Pre-open buffering: what the client sends while the upstream is still connecting is kept,
 * in order and with its type, and flushed on open; past `maxBufferSize` (text counted at
 * 3 bytes per UTF-16 unit) the client is closed with 1009; `0` disables the limit.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { CROSSWS_LINES, cleanup, sleep, startUpstream, waitFor, withTimeout, wsConnect } from '../helpers'
import { proxied } from './setup'

afterEach(() => cleanup())

const early: Array<string | Buffer> = ['first', Buffer.from('second'), '', Buffer.alloc(0), 'ünï🌍', Buffer.from([0xFF, 0])]

describe.each(CROSSWS_LINES)('crossws %s: pre-open buffering', (line) => {
  it('frames sent during a slow upstream handshake arrive in order once it opens', async () => {
    const upstream = await startUpstream({ handshakeDelay: 150 })
    const { server } = await proxied(line, { target: upstream.url })
    const client = await wsConnect(server.url)

    for (const data of early) client.send(data)
    expect(upstream.connections, 'sent before the upstream opened').toBe(0)

    await waitFor(() => client.messages.length === early.length, { label: 'echoes', describe: () => client.messages.length })
    expect(upstream.received.map(f => f.data.toString('hex'))).toEqual(early.map(d => Buffer.from(d).toString('hex')))
    expect(upstream.received.map(f => f.isBinary)).toEqual(early.map(d => typeof d !== 'string'))
    expect(client.messages.map(m => [m.data.toString('hex'), m.isBinary])).toEqual(early.map(d => [Buffer.from(d).toString('hex'), typeof d !== 'string']))
  })

  it('frames sent while an async target resolves arrive in order', async () => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, {
      target: async () => {
        await sleep(100)
        return upstream.url
      },
    })
    const client = await wsConnect(server.url)

    for (const data of early) client.send(data)
    expect(upstream.handshakes, 'sent before the upstream was dialled').toHaveLength(0)

    await waitFor(() => client.messages.length === early.length, { label: 'echoes', describe: () => client.messages.length })
    expect(upstream.received.map(f => [f.data.toString('hex'), f.isBinary])).toEqual(early.map(d => [Buffer.from(d).toString('hex'), typeof d !== 'string']))
  })

  it('frames sent after the flush keep their order behind the buffered ones', async () => {
    const upstream = await startUpstream({ handshakeDelay: 80 })
    const { server } = await proxied(line, { target: upstream.url })
    const client = await wsConnect(server.url)

    const sent: string[] = []
    const started = Date.now()
    while (Date.now() - started < 200) { // spans the moment the upstream opens
      const data = `m${sent.length}`
      client.send(data)
      sent.push(data)
      await sleep(2)
    }

    await waitFor(() => client.messages.length === sent.length, { label: 'echoes', describe: () => client.messages.length })
    expect(upstream.received.map(f => f.text)).toEqual(sent)
  })

  it('a text frame over maxBufferSize (3 bytes per UTF-16 unit) closes the client with 1009', async () => {
    const upstream = await startUpstream({ handshakeDelay: 200 })
    const { server } = await proxied(line, { target: upstream.url, maxBufferSize: 30 })
    const client = await wsConnect(server.url)

    client.send('12345678901') // 11 units = 33 bytes accounted

    expect((await withTimeout(client.closed, 1_000, 'client close')).code).toBe(1009)
    await sleep(250) // past the upstream's handshake delay
    expect(upstream.received).toEqual([])
    expect(upstream.connections).toBe(0)
  })

  it('exactly maxBufferSize is accepted', async () => {
    const upstream = await startUpstream({ handshakeDelay: 100 })
    const { server } = await proxied(line, { target: upstream.url, maxBufferSize: 30 })
    const client = await wsConnect(server.url)

    client.send('1234567890') // 30 bytes accounted
    const echoed = await client.next()

    expect(echoed.text).toBe('1234567890')
    expect(client.isOpen).toBe(true)
  })

  it('the limit counts all buffered frames, binary by byte length', async () => {
    const upstream = await startUpstream({ handshakeDelay: 200 })
    const { server } = await proxied(line, { target: upstream.url, maxBufferSize: 30 })
    const client = await wsConnect(server.url)

    client.send(Buffer.alloc(20))
    client.send(Buffer.alloc(10))
    await sleep(30)
    expect(client.isOpen, '30 bytes fit').toBe(true)
    client.send(Buffer.alloc(1))

    expect((await withTimeout(client.closed, 1_000, 'client close')).code).toBe(1009)
  })

  it('the default limit is 1 MiB', async () => {
    const upstream = await startUpstream({ handshakeDelay: 300 })
    const { server } = await proxied(line, { target: upstream.url })
    const client = await wsConnect(server.url)

    client.send(Buffer.alloc(1024 * 1024))
    await sleep(50)
    expect(client.isOpen, '1 MiB fits').toBe(true)
    client.send(Buffer.alloc(1))

    expect((await withTimeout(client.closed, 1_000, 'client close')).code).toBe(1009)
  })

  it('maxBufferSize: 0 disables the limit', async () => {
    const upstream = await startUpstream({ handshakeDelay: 150 })
    const { server } = await proxied(line, { target: upstream.url, maxBufferSize: 0 })
    const client = await wsConnect(server.url)

    client.send(Buffer.alloc(2 * 1024 * 1024, 1))
    client.send('x'.repeat(400_000))

    const first = await client.next(3_000)
    const second = await client.next(3_000)
    expect([first.data.length, first.isBinary]).toEqual([2 * 1024 * 1024, true])
    expect([second.data.length, second.isBinary]).toEqual([400_000, false])
  })

  it('the limit does not apply once the upstream is open', async () => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, { target: upstream.url, maxBufferSize: 30 })
    const client = await wsConnect(server.url)
    client.send('hi')
    await client.next()

    client.send('x'.repeat(1_000))

    expect((await client.next()).text).toBe('x'.repeat(1_000))
    expect(client.isOpen).toBe(true)
  })
})
