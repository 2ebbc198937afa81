/**
 * Frames that break RFC 6455, written raw on the socket by either side. The client is closed
 * with a close frame (1002 for its own protocol errors; 1002 or 1011 for the upstream's, never a
 * bare TCP drop), the upstream leg is closed, and a bystander on the same proxy keeps working.
 * With frame passthrough on (the default) and off.
 */
import type { WebSocketProxyOptions } from '../../src/core/types'
import { afterEach, describe, expect, it } from 'vitest'
import { CROSSWS_LINES, cleanup, startUpstream, waitFor, withTimeout, wsConnect } from '../helpers'
import { OPCODE, closeBystander, encodeFrame, faultRig, rawWebSocket, startRawUpstream } from './harness'

afterEach(() => cleanup())

const MODES: Array<{ mode: string, options: Omit<WebSocketProxyOptions, 'target'> }> = [
  { mode: 'passthrough on (default)', options: {} },
  { mode: 'passthrough: false', options: { passthrough: false } },
]

/** Frames a client must not send (its frames must be masked; no extension is negotiated). */
const FROM_CLIENT: Array<{ name: string, frame: () => Buffer }> = [
  { name: 'an unmasked frame', frame: () => encodeFrame(OPCODE.text, 'unmasked') },
  { name: 'RSV1 set', frame: () => encodeFrame(OPCODE.text, 'rsv1', { rsv: 4, mask: true }) },
  { name: 'reserved opcode 3', frame: () => encodeFrame(0x3, 'three', { mask: true }) },
  { name: 'reserved opcode 0xB', frame: () => encodeFrame(0xB, 'eleven', { mask: true }) },
  { name: 'a fragmented control frame', frame: () => encodeFrame(OPCODE.ping, 'half', { fin: false, mask: true }) },
  { name: 'a control frame of 126 bytes', frame: () => encodeFrame(OPCODE.ping, Buffer.alloc(126, 1), { mask: true }) },
  { name: 'a continuation without a start', frame: () => encodeFrame(OPCODE.continuation, 'orphan', { mask: true }) },
]

/** Frames an upstream (a server) must not send. */
const FROM_UPSTREAM: Array<{ name: string, frame: () => Buffer }> = [
  { name: 'a masked frame', frame: () => encodeFrame(OPCODE.text, 'masked', { mask: true }) },
  { name: 'RSV1 set', frame: () => encodeFrame(OPCODE.text, 'rsv1', { rsv: 4 }) },
  { name: 'RSV2 and RSV3 set', frame: () => encodeFrame(OPCODE.binary, Buffer.from('rsv23'), { rsv: 3 }) },
  { name: 'reserved opcode 3', frame: () => encodeFrame(0x3, 'three') },
  { name: 'reserved opcode 0xB', frame: () => encodeFrame(0xB, 'eleven') },
]

describe.each(CROSSWS_LINES)('crossws %s: invalid frames', (line) => {
  describe.each(MODES)('$mode', ({ options }) => {
    it.each(FROM_CLIENT)('from the client, $name: the client gets 1002 and the upstream leg is closed', async ({ frame }) => {
      const upstream = await startUpstream()
      const rig = await faultRig(line, upstream.url, options)
      const client = await rawWebSocket(`${rig.server.url}/invalid`)
      client.write(encodeFrame(OPCODE.text, 'valid first', { mask: true }))
      expect((await client.next()).payload.toString()).toBe('valid first')

      client.write(frame())
      await withTimeout(client.closed, 2_000, 'client connection closed')

      expect(client.closeFrame?.code).toBe(1002)
      await waitFor(() => upstream.connections === 0 && upstream.sockets === 0, { label: 'upstream leg closed', describe: () => upstream.closes })
      // The proxy closed the leg with a close frame; the invalid frame never reached the upstream
      // (relayed, it would make the upstream fail the connection itself: 1006 on its side).
      expect(upstream.closes).toHaveLength(1)
      expect(upstream.closes[0]!.code).not.toBe(1006)
      expect(upstream.received.map(frame => frame.text)).toEqual(['valid first'])
      await waitFor(() => rig.proxy.stats().open === 1, { label: 'only the bystander left open', describe: () => rig.proxy.stats() })

      await rig.expectHealthy()
      await closeBystander(rig)
    }, 10_000)

    it.each(FROM_UPSTREAM)('from the upstream, $name: the client gets a close frame (1011 or 1002) and the upstream leg is closed', async ({ frame }) => {
      const upstream = await startRawUpstream(frame())
      const rig = await faultRig(line, upstream.url, options)
      const client = await wsConnect(`${rig.server.url}/invalid`)
      client.send('valid first')
      expect((await client.next()).text).toBe('valid first')

      client.send('bad') // the raw upstream answers with the invalid frame
      const closed = await withTimeout(client.closed, 2_000, 'client close')

      // 1006 would mean the TCP connection dropped without a close frame.
      expect(closed.code).not.toBe(1006)
      expect([1002, 1011]).toContain(closed.code)
      expect(client.messages.map(m => m.text)).toEqual(['valid first'])
      await waitFor(() => upstream.sockets === 0, { label: 'upstream leg closed', describe: () => upstream.sockets })
      await waitFor(() => rig.proxy.stats().open === 1, { label: 'only the bystander left open', describe: () => rig.proxy.stats() })

      await rig.expectHealthy()
      await closeBystander(rig)
    }, 10_000)
  })
})
