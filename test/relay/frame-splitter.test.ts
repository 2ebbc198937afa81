import { describe, expect, it } from 'vitest'
import { FrameSplitter } from '../../src/core/frame-relay'

/** An unmasked frame as a server writes it (RFC 6455 §5.2), or masked with `mask`. */
function frame(opcode: number, payload: Buffer, { fin = true, mask }: { fin?: boolean, mask?: Buffer } = {}): Buffer {
  const length = payload.length
  const head = length < 126 ? Buffer.from([0, length]) : length < 65536 ? Buffer.from([0, 126, length >> 8, length & 0xFF]) : Buffer.alloc(10)
  if (length >= 65536) {
    head[1] = 127
    head.writeUInt32BE(Math.floor(length / 2 ** 32), 2)
    head.writeUInt32BE(length >>> 0, 6)
  }
  head[0] = (fin ? 0x80 : 0) | opcode
  if (!mask) return Buffer.concat([head, payload])
  head[1]! |= 0x80
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i & 3]!))
  return Buffer.concat([head, mask, masked])
}

function collect(maxFrame?: number) {
  const data: Array<{ bytes: Buffer, payloadLength: number, fin: boolean }> = []
  const control: Buffer[] = []
  let tooBig = 0
  const splitter = new FrameSplitter(
    {
      frame: (_fromClient, slices, payloadLength, fin) => data.push({ bytes: Buffer.concat(slices), payloadLength, fin }),
      frameTooBig: () => { tooBig++ },
    },
    { write: (f) => { control.push(Buffer.from(f)); return true } },
    true,
    maxFrame,
  )
  return { splitter, data, control, tooBig: () => tooBig }
}

describe('FrameSplitter (passthrough framing)', () => {
  it('cuts a stream into whole frames, whatever the chunking, without changing a byte', () => {
    const mask = Buffer.from([1, 2, 3, 4])
    const frames = [
      frame(0x1, Buffer.from('héllo'), { mask }),
      frame(0x2, Buffer.alloc(300, 7), { mask }),
      frame(0x9, Buffer.from('ping'), { mask }),
      frame(0x2, Buffer.alloc(70_000, 9)),
      frame(0x1, Buffer.from('part'), { fin: false }),
      frame(0x0, Buffer.from(' two'), { fin: true }),
    ]
    const stream = Buffer.concat(frames)
    for (const step of [1, 3, 7, 1000, stream.length]) {
      const { splitter, data, control } = collect()
      for (let i = 0; i < stream.length; i += step) splitter.push(stream.subarray(i, i + step))
      expect(data.map(d => d.bytes)).toEqual([frames[0], frames[1], frames[3], frames[4], frames[5]])
      expect(data.map(d => [d.payloadLength, d.fin])).toEqual([[6, true], [300, true], [70_000, true], [4, false], [4, true]])
      expect(control).toEqual([frames[2]])
    }
  })

  it('drops a frame over the limit as it arrives and stays in step for the close that follows', () => {
    const { splitter, data, control, tooBig } = collect(1024)
    const big = frame(0x2, Buffer.alloc(5000, 1))
    const small = frame(0x1, Buffer.from('after'))
    const close = frame(0x8, Buffer.from([0x03, 0xE8]))
    const stream = Buffer.concat([big, small, close])
    for (let i = 0; i < stream.length; i += 512) splitter.push(stream.subarray(i, i + 512))
    expect(tooBig()).toBe(1)
    expect(data.map(d => d.bytes)).toEqual([small])
    expect(control).toEqual([close])
  })

  it('stops after a close frame and hands reserved opcodes to the receiver', () => {
    const { splitter, data, control } = collect()
    const reserved = frame(0x3, Buffer.from('x'))
    const close = frame(0x8, Buffer.alloc(0))
    splitter.push(Buffer.concat([reserved, close, frame(0x1, Buffer.from('late'))]))
    expect(control).toEqual([reserved, close])
    expect(data).toEqual([])
  })
})
