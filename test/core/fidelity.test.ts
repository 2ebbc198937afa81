/**
 * Message fidelity: every frame keeps its payload and its type (text or binary) in both
 * directions. crossws 0.3's node adapter drops the type in its `message` hook, so a binary
 * frame holding valid UTF-8 is the case that catches a proxy guessing the type from the bytes.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { CROSSWS_LINES, cleanup, startUpstream, waitFor, wsConnect } from '../helpers'
import { proxied } from './setup'

afterEach(() => cleanup())

const cases: Array<{ name: string, data: string | Buffer }> = [
  { name: 'ASCII text', data: 'hello' },
  { name: 'binary that is valid UTF-8', data: Buffer.from('hello') },
  { name: 'empty text', data: '' },
  { name: 'empty binary', data: Buffer.alloc(0) },
  { name: 'unicode text', data: 'héllo wörld, 你好, 🌍🚀, \u0000 end' },
  { name: 'binary that is not UTF-8', data: Buffer.from([0xFF, 0x00, 0xC3, 0x28, 0x80]) },
  { name: 'large text (> 64 KiB)', data: 'ü'.repeat(70_000) },
  { name: 'large binary (> 64 KiB)', data: Buffer.alloc(100_000, 7) },
]

describe.each(CROSSWS_LINES)('crossws %s: message fidelity', (line) => {
  it.each(cases)('$name keeps payload and type both ways', async ({ data }) => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, { target: `${upstream.url}/echo` })
    const client = await wsConnect(`${server.url}/echo`)
    const isBinary = typeof data !== 'string'
    const bytes = Buffer.from(data)

    client.send(data)
    const echoed = await client.next()

    expect(upstream.received).toHaveLength(1)
    expect(upstream.received[0]!.isBinary, 'frame type at the upstream').toBe(isBinary)
    expect(upstream.received[0]!.data.equals(bytes), 'payload at the upstream').toBe(true)
    expect(echoed.isBinary, 'frame type at the client').toBe(isBinary)
    expect(echoed.data.equals(bytes), 'payload at the client').toBe(true)
  })

  it('frames the upstream initiates keep their type', async () => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, { target: upstream.url })
    const client = await wsConnect(server.url)

    client.send('send-binary:5')
    expect(await client.next()).toMatchObject({ isBinary: true, data: Buffer.from([0, 1, 2, 3, 4]) })
    client.send('send-text:ünï🌍')
    expect(await client.next()).toMatchObject({ isBinary: false, text: 'ünï🌍' })
    client.send('send-binary:0')
    expect(await client.next()).toMatchObject({ isBinary: true, data: Buffer.alloc(0) })
    client.send('send-text:')
    expect(await client.next()).toMatchObject({ isBinary: false, text: '' })
  })

  it('a burst of mixed frames keeps order and types', async () => {
    const upstream = await startUpstream()
    const { server } = await proxied(line, { target: upstream.url })
    const client = await wsConnect(server.url)
    await expectFirstEcho(client)

    const sent = Array.from({ length: 200 }, (_, i) => i % 2 === 0 ? `t${i}` : Buffer.from(`b${i}`))
    for (const data of sent) client.send(data)
    await waitFor(() => client.messages.length === sent.length + 1, { label: '200 echoes', describe: () => client.messages.length })

    const got = client.messages.slice(1).map(m => [m.text, m.isBinary])
    expect(got).toEqual(sent.map(data => [data.toString(), typeof data !== 'string']))
    expect(upstream.received.slice(1).map(f => [f.text, f.isBinary])).toEqual(got)
  })

  it('frames sent by the upstream as soon as it opens reach the client', async () => {
    const upstream = await startUpstream({
      onConnection: (ws) => {
        ws.send('welcome')
        ws.send(Buffer.from([1, 2, 3]))
      },
    })
    const { server } = await proxied(line, { target: upstream.url })
    const client = await wsConnect(server.url)

    expect(await client.next()).toMatchObject({ isBinary: false, text: 'welcome' })
    expect(await client.next()).toMatchObject({ isBinary: true, data: Buffer.from([1, 2, 3]) })
  })
})

async function expectFirstEcho(client: Awaited<ReturnType<typeof wsConnect>>) {
  client.send('ready')
  expect(await client.next()).toMatchObject({ text: 'ready', isBinary: false })
}
