/**
 * Frame passthrough: once both legs of a connection are open `ws` sockets with no extension
 * negotiated, data frames are copied byte for byte from one TCP socket to the other instead of
 * being decoded into messages and encoded again. A client's frame keeps the mask its browser
 * chose (a fresh, unpredictable key, as RFC 6455 §5.3 asks of the sender), the upstream's
 * unmasked frames stay unmasked: no unmasking, re-masking, reassembly or copying per message.
 *
 * Control frames (close, ping, pong) still go to the leg's own `ws` receiver, so close codes,
 * automatic pongs and heartbeats behave exactly as before. Data frames are written whole, so a
 * control frame `ws` writes on the same socket never lands inside one.
 */
import type { NodeWebSocket } from './node-socket'

/**
 * Largest data frame held while it arrives; a bigger one ends the connection (1009). The same
 * 100 MiB as `ws`'s default `maxPayload`, so passthrough accepts what decoding would.
 */
export const MAX_PASSTHROUGH_FRAME = 100 * 1024 * 1024

/** Most chunks one frame may arrive in (`ws`'s default `maxBufferedChunks`). */
const MAX_BUFFERED_CHUNKS = 262_144

interface RawSocket {
  listeners: (event: 'data') => Array<(chunk: Buffer) => void>
  removeListener: (event: 'data', listener: (chunk: Buffer) => void) => unknown
  on: (event: 'data', listener: (chunk: Buffer) => void) => unknown
  write: (chunk: Buffer) => boolean
}

interface ReceiverInternals {
  _state: number
  _bufferedBytes: number
  _fragmented: number
  _loop: boolean
  _errored: boolean
  _writableState?: { length: number }
  write: (chunk: Buffer) => boolean
}

type SocketInternals = NodeWebSocket & {
  _socket?: RawSocket | null
  _receiver?: ReceiverInternals
  _extensions?: Record<string, unknown>
}

/** Where a splitter hands whole data frames: the connection writes them to the other leg. */
export interface FrameTarget {
  /** A whole data frame as slices of the chunks it came in, with its payload size and FIN bit. */
  frame: (fromClient: boolean, slices: Buffer[], payloadLength: number, fin: boolean) => void
  /** A frame over {@link MAX_PASSTHROUGH_FRAME} arrived: the connection must end (1009). */
  frameTooBig: (fromClient: boolean) => void
}

const kSplitter = Symbol('nitro-ws-proxy.splitter')

/** The socket's `data` listener, shared by all sockets: no closure per connection. */
function onSocketData(this: { [kSplitter]: FrameSplitter }, chunk: Buffer): void {
  this[kSplitter].push(chunk)
}

/** Both legs can be relayed frame by frame: raw `ws` sockets, open, without extensions. */
export function canPassThrough(a: NodeWebSocket, b: NodeWebSocket): boolean {
  return isPlainOpenSocket(a as SocketInternals) && isPlainOpenSocket(b as SocketInternals)
}

function isPlainOpenSocket(ws: SocketInternals): boolean {
  return ws.readyState === 1
    && !!ws._socket && !!ws._receiver
    && (!ws._extensions || Object.keys(ws._extensions).length === 0)
    && ws._socket.listeners('data').length === 1
}

/** The receiver is between frames and holds nothing: the byte stream can change hands here. */
function atFrameBoundary(ws: SocketInternals): boolean {
  const r = ws._receiver!
  return r._state === 0 && r._bufferedBytes === 0 && r._fragmented === 0 && !r._loop && !r._errored
    && (r._writableState?.length ?? 0) === 0
}

/**
 * Take over reading `from`'s socket: whole data frames go to `target`, control frames to
 * `from`'s own receiver. Returns false (nothing changed) when `from` is not at a frame boundary.
 */
export function startFrameRelay(from: NodeWebSocket, target: FrameTarget, fromClient: boolean): boolean {
  const source = from as SocketInternals
  if (!atFrameBoundary(source)) return false
  const socket = source._socket! as RawSocket & { [kSplitter]?: FrameSplitter }
  const wsListener = socket.listeners('data')[0]!
  socket[kSplitter] = new FrameSplitter(target, source._receiver!, fromClient)
  socket.removeListener('data', wsListener)
  socket.on('data', onSocketData as (chunk: Buffer) => void)
  return true
}

/**
 * Cuts a byte stream into whole frames without copying payloads: a frame is a list of slices
 * of the chunks it arrived in. Only headers are read (at most 14 bytes per frame).
 */
export class FrameSplitter {
  private chunks: Buffer[] = []
  private buffered = 0
  private stopped = false
  /** Payload bytes of a refused (too big) frame still to drop, so later frames stay in step. */
  private skipping = 0

  constructor(
    private readonly target: FrameTarget,
    private readonly receiver: { write: (frame: Buffer) => boolean },
    private readonly fromClient: boolean,
    private readonly maxFrame = MAX_PASSTHROUGH_FRAME,
  ) {}

  push(chunk: Buffer): void {
    if (this.stopped) return
    this.chunks.push(chunk)
    this.buffered += chunk.length
    while (!this.stopped) {
      if (this.skipping > 0) {
        const dropped = Math.min(this.skipping, this.buffered)
        this.take(dropped)
        this.skipping -= dropped
        if (this.skipping > 0) return
      }
      const header = this.peekHeader()
      if (header === undefined) return
      const { headerLength, payloadLength, opcode, fin } = header
      if (payloadLength > this.maxFrame) {
        // Drop it as it arrives (never hold it): the close handshake that follows still parses.
        this.take(headerLength)
        this.skipping = payloadLength
        this.target.frameTooBig(this.fromClient)
        continue
      }
      const total = headerLength + payloadLength
      if (this.buffered < total) {
        // A frame dripped in tiny pieces must not grow an unbounded list (as `ws` caps it too).
        if (this.chunks.length > MAX_BUFFERED_CHUNKS) {
          const held = this.buffered
          this.take(held)
          this.skipping = total - held
          this.target.frameTooBig(this.fromClient)
          continue
        }
        return
      }
      const slices = this.take(total)
      if (opcode <= 0x2) {
        this.target.frame(this.fromClient, slices, payloadLength, fin)
      }
      else {
        // Control frames, and reserved opcodes for `ws` to refuse, go to the leg's receiver.
        // After a close frame the stream is over: `ws` answers it and ends the socket.
        if (opcode === 0x8) this.stopped = true
        this.receiver.write(slices.length === 1 ? slices[0]! : Buffer.concat(slices, total))
      }
    }
  }

  /** The next frame's header, or undefined while it is incomplete. */
  private peekHeader(): { headerLength: number, payloadLength: number, opcode: number, fin: boolean } | undefined {
    if (this.buffered < 2) return undefined
    const b0 = this.byteAt(0)
    const b1 = this.byteAt(1)
    const masked = (b1 & 0x80) !== 0
    let payloadLength = b1 & 0x7F
    let headerLength = 2
    if (payloadLength === 126) {
      if (this.buffered < 4) return undefined
      payloadLength = (this.byteAt(2) << 8) | this.byteAt(3)
      headerLength = 4
    }
    else if (payloadLength === 127) {
      if (this.buffered < 10) return undefined
      const high = ((this.byteAt(2) << 24) >>> 0) + (this.byteAt(3) << 16) + (this.byteAt(4) << 8) + this.byteAt(5)
      const low = ((this.byteAt(6) << 24) >>> 0) + (this.byteAt(7) << 16) + (this.byteAt(8) << 8) + this.byteAt(9)
      payloadLength = high * 2 ** 32 + low
      headerLength = 10
    }
    if (masked) headerLength += 4
    return { headerLength, payloadLength, opcode: b0 & 0x0F, fin: (b0 & 0x80) !== 0 }
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
