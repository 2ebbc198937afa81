/**
 * Large messages: one frame uploaded slowly, over several heartbeat rounds, is not mistaken for
 * a dead client; 16 and 64 MiB messages cross intact both ways with the default options. A
 * bystander on the same proxy keeps working.
 */
import type { WebSocketProxyOptions } from '../../src/core/types'
import { randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { CROSSWS_LINES, cleanup, sleep, wsConnect } from '../helpers'
import { OPCODE, closeBystander, encodeFrame, faultRig, rawWebSocket, sha256, startSinkUpstream } from './harness'

afterEach(() => cleanup())

const MiB = 1024 * 1024

const MODES: Array<{ mode: string, options: Omit<WebSocketProxyOptions, 'target'> }> = [
  { mode: 'passthrough on (default)', options: {} },
  { mode: 'passthrough: false', options: { passthrough: false } },
]

describe.each(CROSSWS_LINES)('crossws %s: large messages', (line) => {
  describe.each(MODES)('$mode', ({ options }) => {
    it('one 8 MiB frame uploaded over 1.5 s (heartbeat 200 + 200 ms) is not cut, and arrives intact', async () => {
      const upstream = await startSinkUpstream()
      const rig = await faultRig(line, upstream.url, { ...options, heartbeatInterval: 200, heartbeatTimeout: 200 })
      const client = await rawWebSocket(`${rig.server.url}/upload`)
      const payload = randomBytes(8 * MiB)
      const frame = encodeFrame(OPCODE.binary, payload, { mask: true })

      // Mid-frame, a client cannot answer a ping: its pong must wait for the frame's end.
      client.holdPongs = true
      const slices = 128
      const slice = Math.ceil(frame.length / slices)
      const started = Date.now()
      for (let i = 0; i < slices && !client.isClosed; i++) {
        client.write(frame.subarray(i * slice, (i + 1) * slice))
        await sleep(12)
      }
      const uploadMs = Date.now() - started
      client.holdPongs = false

      const causes = Object.entries(rig.proxy.stats().closed).filter(([, n]) => n > 0)
      expect(client.isClosed, `cut during the upload (close frame: ${JSON.stringify(client.closeFrame)}, proxy causes: ${JSON.stringify(causes)})`).toBe(false)
      expect(uploadMs).toBeGreaterThanOrEqual(1_400)
      const answer = await client.next(10_000)
      expect(answer.payload.toString()).toBe(`${sha256(payload)}:${payload.length}`)
      expect(client.closeFrame).toBeUndefined()
      expect(rig.proxy.stats().closed['client-heartbeat']).toBe(0)

      await rig.expectHealthy()
      await client.close(1000)
      await closeBystander(rig)
    }, 20_000)
  })

  describe.each([16, 64])('%i MiB, default options', (size) => {
    it('client → upstream: arrives intact', async () => {
      const upstream = await startSinkUpstream()
      const rig = await faultRig(line, upstream.url)
      const client = await wsConnect(`${rig.server.url}/large`)
      const payload = randomBytes(size * MiB)

      client.send(payload, true)
      const answer = await client.next(20_000)

      expect(answer.text).toBe(`${sha256(payload)}:${payload.length}`)
      expect(client.isOpen).toBe(true)
      await rig.expectHealthy()
      await client.close(1000)
      await closeBystander(rig)
    }, 30_000)

    it('upstream → client: arrives intact', async () => {
      const upstream = await startSinkUpstream()
      const rig = await faultRig(line, upstream.url)
      const client = await wsConnect(`${rig.server.url}/large`)

      client.send(`send:${size * MiB}`)
      const message = await client.next(20_000)
      const digest = await client.next(5_000)

      expect(message.isBinary).toBe(true)
      expect(`${sha256(message.data)}:${message.data.length}`).toBe(digest.text)
      expect(message.data.length).toBe(size * MiB)
      expect(client.isOpen).toBe(true)
      await rig.expectHealthy()
      await client.close(1000)
      await closeBystander(rig)
    }, 30_000)
  })
})
