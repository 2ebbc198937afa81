/**
 * A client that vanishes without a close frame (its TCP socket destroyed, reset, or dropped in
 * the middle of a frame): the proxy closes the upstream leg with 1001 and releases the
 * connection, and a bystander on the same proxy keeps working.
 */
import type { Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { CROSSWS_LINES, cleanup, sleep, startUpstream, usesWsCtor, waitFor, withTimeout, wsConnect } from '../helpers'
import { expectEcho } from '../core/setup'
import { OPCODE, closeBystander, encodeFrame, faultRig, rawWebSocket } from './harness'

afterEach(() => cleanup())

/** What the upstream is told when its client drops: 1001 Going Away (WHATWG constructors: 1000). */
const GOING_AWAY = usesWsCtor ? 1001 : 1000

const socketOf = (client: { ws: unknown }) => (client.ws as { _socket: Socket })._socket

describe.each(CROSSWS_LINES)('crossws %s: a client that vanishes without a close frame', (line) => {
  it.each([
    ['destroyed (FIN)', (socket: Socket) => socket.destroy()],
    ['reset (RST)', (socket: Socket) => socket.resetAndDestroy()],
  ] as const)('its TCP socket %s: the upstream leg gets 1001 and the connection is released', async (_name, drop) => {
    const upstream = await startUpstream()
    const rig = await faultRig(line, upstream.url)
    const client = await wsConnect(`${rig.server.url}/vanish`)
    await expectEcho(client, 'before vanishing')

    drop(socketOf(client))

    await waitFor(() => upstream.closes.length === 1, { label: 'upstream leg closed', describe: () => upstream.closes })
    expect(upstream.closes[0]!.code).toBe(GOING_AWAY)
    await waitFor(() => upstream.connections === 0 && upstream.sockets === 0, { label: 'upstream socket released' })
    await waitFor(() => rig.proxy.stats().open === 1, { label: 'only the bystander left open', describe: () => rig.proxy.stats() })
    expect(rig.proxy.stats().closed.client).toBe(1)

    await rig.expectHealthy()
    await closeBystander(rig)
  }, 10_000)

  it('dropped in the middle of a frame: the upstream leg gets 1001 and never sees the partial frame', async () => {
    const upstream = await startUpstream()
    const rig = await faultRig(line, upstream.url)
    const client = await rawWebSocket(`${rig.server.url}/vanish`)
    client.write(encodeFrame(OPCODE.text, 'whole', { mask: true }))
    expect((await client.next()).payload.toString()).toBe('whole')

    const frame = encodeFrame(OPCODE.binary, Buffer.alloc(64 * 1024, 1), { mask: true })
    client.write(frame.subarray(0, 20_000))
    await sleep(50) // the proxy reads the partial frame
    client.socket.destroy()
    await withTimeout(client.closed, 1_000, 'raw client closed')

    await waitFor(() => upstream.closes.length === 1, { label: 'upstream leg closed', describe: () => upstream.closes })
    expect(upstream.closes[0]!.code).toBe(GOING_AWAY)
    expect(upstream.received.map(frame => frame.text)).toEqual(['whole'])
    await waitFor(() => rig.proxy.stats().open === 1, { label: 'only the bystander left open', describe: () => rig.proxy.stats() })

    await rig.expectHealthy()
    await closeBystander(rig)
  }, 10_000)
})
