/**
 * Frame passthrough: once both legs of a connection are open `ws` sockets with no extension,
 * data frames are copied byte for byte from one TCP socket to the other instead of being decoded
 * into messages and encoded again. A client's frame keeps the mask its browser chose (a fresh,
 * unpredictable key, as RFC 6455 §5.3 asks of the sender); the upstream's frames stay unmasked.
 *
 * The splitter reads one leg's byte stream, checks every frame header as an endpoint must
 * (RFC 6455 §5.1-5.5: masking by direction, no RSV bits without an extension, known opcodes,
 * short unfragmented control frames, continuation order) and hands:
 * - small data frames whole (held until complete, so a dying leg never leaves half a frame on
 *   the other one),
 * - larger data frames as they arrive (header first, then payload pieces): memory stays bounded
 *   by the flow-control water marks whatever the frame size,
 * - control frames (close, ping, pong) to the leg's own `ws` receiver, so close codes, pongs and
 *   heartbeats behave as without passthrough.
 */

/** Largest message relayed: the 100 MiB of `ws`'s default `maxPayload`, as decoding accepts. */
export const MAX_PASSTHROUGH_MESSAGE = 100 * 1024 * 1024

/** Frames up to this size (header included) are held until complete; larger ones stream. */
export const WHOLE_FRAME_MAX = 128 * 1024

/** Most chunks one held frame may arrive in (`ws`'s default `maxBufferedChunks`). */
const MAX_BUFFERED_CHUNKS = 262_144

/** Where a splitter hands frames: the connection writes them to the other leg. */
export interface FrameTarget {
  /**
   * Bytes of one data frame, as slices of the chunks they came in: `first` (header included)
   * and `last` piece, payload bytes in this piece, and the frame's FIN bit.
   */
  frameData: (fromClient: boolean, slices: Buffer[], payloadBytes: number, first: boolean, last: boolean, fin: boolean) => void
  /** A whole control frame, for the leg's own receiver. */
  frameControl: (fromClient: boolean, frame: Buffer) => void
  /** The leg broke the protocol (1002) or sent a message over the limit (1009). */
  frameInvalid: (fromClient: boolean, code: 1002 | 1009, reason: string) => void
}

const INFO = 0
const STREAM = 1
const STOPPED = 2

export class FrameSplitter {
  private chunks: Buffer[] = []
  private buffered = 0
  private state = INFO
  /** Payload bytes of the frame being streamed still to come. */
  private remaining = 0
  private fin = false
  /** A fragmented message is in progress (its first frame had FIN clear). */
  private fragmented = false
  /** Payload bytes of the current message so far (all its fragments). */
  private messageBytes = 0

  constructor(
    private readonly target: FrameTarget,
    /** Frames from a client must be masked; frames from a server must not (RFC 6455 §5.1). */
    private readonly fromClient: boolean,
    private readonly maxMessage = MAX_PASSTHROUGH_MESSAGE,
    private readonly wholeFrameMax = WHOLE_FRAME_MAX,
  ) {}

  push(chunk: Buffer): void {
    if (this.state === STOPPED) return
    this.chunks.push(chunk)
    this.buffered += chunk.length
    while (this.buffered > 0) {
      if (this.state === STREAM) {
        const n = Math.min(this.remaining, this.buffered)
        this.remaining -= n
        const last = this.remaining === 0
        if (last) this.state = INFO
        this.target.frameData(this.fromClient, this.take(n), n, false, last, this.fin)
        continue
      }
      if (this.state !== INFO || !this.nextFrame()) return
    }
  }

  /** Stop reading (the connection ended or the stream broke): drop what is held. */
  stop(): void {
    this.state = STOPPED
    this.chunks = []
    this.buffered = 0
  }

  /** Whether a streamed frame is partly relayed. */
  get midFrame(): boolean {
    return this.state === STREAM
  }

  /** Handle the frame at the front; false when more bytes are needed (or the stream stopped). */
  private nextFrame(): boolean {
    if (this.buffered < 2) return false
    const b0 = this.byteAt(0)
    const b1 = this.byteAt(1)
    let payloadLength = b1 & 0x7F
    let headerLength = 2
    if (payloadLength === 126) {
      if (this.buffered < 4) return false
      payloadLength = (this.byteAt(2) << 8) | this.byteAt(3)
      headerLength = 4
    }
    else if (payloadLength === 127) {
      if (this.buffered < 10) return false
      const high = ((this.byteAt(2) << 24) >>> 0) + (this.byteAt(3) << 16) + (this.byteAt(4) << 8) + this.byteAt(5)
      if (high > 2 ** 21 - 1) return this.invalid(1009, 'Frame too big')
      payloadLength = high * 2 ** 32 + ((this.byteAt(6) << 24) >>> 0) + (this.byteAt(7) << 16) + (this.byteAt(8) << 8) + this.byteAt(9)
      headerLength = 10
    }
    const masked = (b1 & 0x80) !== 0
    if (masked) headerLength += 4
    const fin = (b0 & 0x80) !== 0
    const opcode = b0 & 0x0F

    const problem = this.checkHeader(b0, opcode, fin, masked, payloadLength)
    if (problem) return this.invalid(1002, problem)

    if (this.buffered < headerLength) return false
    const total = headerLength + payloadLength
    if (opcode >= 0x8) {
      if (this.buffered < total) return false
      const slices = this.take(total)
      // After a close frame the stream is over: `ws` answers it and ends the socket.
      if (opcode === 0x8) this.stop()
      this.target.frameControl(this.fromClient, slices.length === 1 ? slices[0]! : Buffer.concat(slices, total))
      return this.state !== STOPPED
    }

    const messageBytes = this.messageBytes + payloadLength
    if (messageBytes > this.maxMessage) return this.invalid(1009, 'Message too big')
    const whole = total <= this.wholeFrameMax
    if (whole && this.buffered < total) {
      // A frame dripped in tiny pieces must not grow an unbounded list (as `ws` caps it too).
      if (this.chunks.length > MAX_BUFFERED_CHUNKS) return this.invalid(1009, 'Too many buffered chunks')
      return false
    }
    this.fragmented = !fin
    this.messageBytes = fin ? 0 : messageBytes
    if (whole) {
      this.target.frameData(this.fromClient, this.take(total), payloadLength, true, true, fin)
      return true
    }
    // Stream it: the header and whatever payload is here now, the rest as it arrives.
    const now = Math.min(total, this.buffered)
    this.remaining = total - now
    this.fin = fin
    if (this.remaining > 0) this.state = STREAM
    this.target.frameData(this.fromClient, this.take(now), now - headerLength, true, this.remaining === 0, fin)
    return true
  }

  /** What is wrong with a frame header, or `undefined`. */
  private checkHeader(b0: number, opcode: number, fin: boolean, masked: boolean, payloadLength: number): string | undefined {
    // No extension is negotiated on a passthrough leg: every RSV bit must be clear (§5.2).
    if ((b0 & 0x70) !== 0) return 'RSV bits must be clear'
    if (masked !== this.fromClient) return this.fromClient ? 'Frame must be masked' : 'Frame must not be masked'
    if (opcode >= 0x8) {
      if (opcode > 0xA) return `Invalid opcode ${opcode}`
      if (!fin) return 'Control frame must not be fragmented'
      if (payloadLength > 125 || (opcode === 0x8 && payloadLength === 1)) return 'Invalid control frame length'
      return undefined
    }
    if (opcode === 0x0) return this.fragmented ? undefined : 'Unexpected continuation frame'
    if (opcode === 0x1 || opcode === 0x2) return this.fragmented ? 'Expected a continuation frame' : undefined
    return `Invalid opcode ${opcode}`
  }

  private invalid(code: 1002 | 1009, reason: string): false {
    this.stop()
    this.target.frameInvalid(this.fromClient, code, reason)
    return false
  }

  private byteAt(index: number): number {
    for (const chunk of this.chunks) {
      if (index < chunk.length) return chunk[index]!
      index -= chunk.length
    }
    return 0
  }

  /** Remove `n` bytes from the front, as slices of the chunks (no copy, one splice). */
  private take(n: number): Buffer[] {
    this.buffered -= n
    const slices: Buffer[] = []
    let whole = 0
    while (n > 0) {
      const chunk = this.chunks[whole]!
      if (chunk.length <= n) {
        slices.push(chunk)
        whole++
        n -= chunk.length
      }
      else {
        slices.push(chunk.subarray(0, n))
        this.chunks[whole] = chunk.subarray(n)
        n = 0
      }
    }
    if (whole > 0) this.chunks.splice(0, whole)
    return slices
  }
}
