import { describe, expect, it } from 'vitest'
import { FrameSplitter } from '../../src/core/frame-splitter'

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

/** A splitter reading one leg, with what it handed out: data frames reassembled per frame. */
function collect({ fromClient = true, maxMessage, wholeFrameMax }: { fromClient?: boolean, maxMessage?: number, wholeFrameMax?: number } = {}) {
  const data: Array<{ bytes: Buffer, payloadLength: number, fin: boolean, pieces: number }> = []
  const control: Buffer[] = []
  const invalid: Array<[number, string]> = []
  let current: { parts: Buffer[], payloadLength: number, pieces: number } | undefined
  const splitter = new FrameSplitter(
    {
      frameData: (_fromClient, slices, payloadBytes, first, last, fin) => {
        if (first) current = { parts: [], payloadLength: 0, pieces: 0 }
        current!.parts.push(...slices.map(b => Buffer.from(b)))
        current!.payloadLength += payloadBytes
        current!.pieces++
        if (last) data.push({ bytes: Buffer.concat(current!.parts), payloadLength: current!.payloadLength, fin, pieces: current!.pieces })
      },
      frameControl: (_fromClient, f) => { control.push(Buffer.from(f)) },
      frameInvalid: (_fromClient, code, reason) => { invalid.push([code, reason]) },
    },
    fromClient,
    maxMessage,
    wholeFrameMax,
  )
  return { splitter, data, control, invalid, midFrame: () => splitter.midFrame }
}

const mask = Buffer.from([1, 2, 3, 4])

describe('FrameSplitter (passthrough framing)', () => {
  it('cuts a stream into frames, whatever the chunking, without changing a byte', () => {
    const frames = [
      frame(0x1, Buffer.from('héllo'), { mask }),
      frame(0x2, Buffer.alloc(300, 7), { mask }),
      frame(0x9, Buffer.from('ping'), { mask }),
      frame(0x2, Buffer.alloc(70_000, 9), { mask }),
      frame(0x1, Buffer.from('part'), { fin: false, mask }),
      frame(0x0, Buffer.from(' two'), { fin: true, mask }),
    ]
    const stream = Buffer.concat(frames)
    for (const step of [1, 3, 7, 1000, stream.length]) {
      const { splitter, data, control, invalid } = collect()
      for (let i = 0; i < stream.length; i += step) splitter.push(stream.subarray(i, i + step))
      expect(invalid).toEqual([])
      expect(data.map(d => d.bytes)).toEqual([frames[0], frames[1], frames[3], frames[4], frames[5]])
      expect(data.map(d => [d.payloadLength, d.fin])).toEqual([[6, true], [300, true], [70_000, true], [4, false], [4, true]])
      // Small frames are handed whole, in one piece.
      expect(data.filter(d => d.payloadLength < 1000).every(d => d.pieces === 1)).toBe(true)
      expect(control).toEqual([frames[2]])
    }
  })

  it('streams a frame larger than the whole-frame limit as it arrives, holding nothing back', () => {
    const payload = Buffer.alloc(1024 * 1024, 5)
    const big = frame(0x2, payload, { mask })
    const { splitter, data, midFrame } = collect({ wholeFrameMax: 64 * 1024 })
    const step = 16 * 1024
    let handedOut = 0
    for (let i = 0; i < big.length; i += step) {
      splitter.push(big.subarray(i, i + step))
      // Everything received so far was handed on: the splitter keeps no copy of the frame.
      handedOut = Math.min(big.length, i + step)
      if (handedOut < big.length) expect(midFrame()).toBe(true)
    }
    expect(midFrame()).toBe(false)
    expect(data).toHaveLength(1)
    expect(data[0]!.bytes.equals(big)).toBe(true)
    expect(data[0]!.payloadLength).toBe(payload.length)
    expect(data[0]!.pieces).toBe(Math.ceil(big.length / step))
  })

  it('refuses a message over the limit (1009) and reads nothing after it', () => {
    const { splitter, data, invalid } = collect({ maxMessage: 1024 })
    splitter.push(Buffer.concat([frame(0x2, Buffer.alloc(600, 1), { fin: false, mask }), frame(0x0, Buffer.alloc(600, 1), { mask }), frame(0x1, Buffer.from('after'), { mask })]))
    expect(invalid).toEqual([[1009, 'Message too big']])
    expect(data).toHaveLength(1)
  })

  it('stops after a close frame', () => {
    const { splitter, data, control } = collect()
    const close = frame(0x8, Buffer.alloc(0), { mask })
    splitter.push(Buffer.concat([close, frame(0x1, Buffer.from('late'), { mask })]))
    expect(control).toEqual([close])
    expect(data).toEqual([])
  })

  const rsv = (f: Buffer) => { const copy = Buffer.from(f); copy[0]! |= 0x40; return copy }
  it.each([
    ['an unmasked client frame', true, frame(0x1, Buffer.from('x')), 'Frame must be masked'],
    ['a masked upstream frame', false, frame(0x1, Buffer.from('x'), { mask }), 'Frame must not be masked'],
    ['RSV1 without an extension', false, rsv(frame(0x2, Buffer.from('x'))), 'RSV bits must be clear'],
    ['reserved data opcode 3', false, frame(0x3, Buffer.from('x')), 'Invalid opcode 3'],
    ['reserved control opcode 0xB', true, frame(0xB, Buffer.from('x'), { mask }), 'Invalid opcode 11'],
    ['a fragmented ping', false, frame(0x9, Buffer.from('x'), { fin: false }), 'Control frame must not be fragmented'],
    ['a 126-byte ping', false, frame(0x9, Buffer.alloc(126)), 'Invalid control frame length'],
    ['a continuation without a start', false, frame(0x0, Buffer.from('x')), 'Unexpected continuation frame'],
    ['a new message inside a fragmented one', false, Buffer.concat([frame(0x1, Buffer.from('a'), { fin: false }), frame(0x1, Buffer.from('b'))]), 'Expected a continuation frame'],
  ])('fails the stream on %s (1002)', (_name, fromClient, bytes, reason) => {
    const { splitter, invalid, control } = collect({ fromClient })
    splitter.push(Buffer.concat([bytes, frame(0x8, Buffer.alloc(0), fromClient ? { mask } : {})]))
    expect(invalid).toEqual([[1002, reason]])
    // Nothing after the broken frame is read (not even the close).
    expect(control).toEqual([])
  })
})
