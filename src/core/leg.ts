import type { NodeWebSocket, RawSocket, WriteGate } from './fence'
import type { FrameSplitter } from './frame-splitter'
import { truncateReason } from './close-codes'
import { gateWrites, getRawSocket } from './fence'

/** `ws` send options, allocated once: the per-message path reuses them. */
export const SEND_BINARY = Object.freeze({ binary: true })
export const SEND_TEXT = Object.freeze({ binary: false })

/** How a leg's incoming data reaches the relay. */
export const READ_HOOK = 0 // crossws `message` hook (clients on non-Node adapters)
export const READ_MESSAGES = 1 // whole messages from a `ws` or WHATWG socket
export const READ_FRAMES = 2 // frame passthrough from the TCP socket under a `ws` socket

/** A socket without `ws`'s extras: a crossws peer, or a WHATWG `WebSocket` upstream. */
export interface PlainSocket {
  readonly readyState?: number
  readonly bufferedAmount?: number
  send: (data: any) => unknown
  close: (code?: number, reason?: string) => unknown
  terminate?: () => unknown
}

const WS_CONNECTING = 0
const WS_OPEN = 1

function asText(data: any): string {
  if (typeof data === 'string') return data
  // A view over the same memory (no copy) for ArrayBuffer and Uint8Array alike.
  const bytes = data instanceof ArrayBuffer ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  return bytes.toString('utf8')
}

/**
 * One side of a proxied connection, client or upstream. Both sides go through the same code:
 * sending, flow control, corking, heartbeats and closing differ only by what the leg is (a `ws`
 * socket that can be paused and pinged, or a plain socket that cannot).
 */
export class Leg {
  /** The `ws` socket: pausable and pingable. Unset for plain sockets. */
  readonly ws: NodeWebSocket | undefined
  /** The TCP socket under `ws`, when the fence knows its layout (corking, drain, bytes read). */
  raw: RawSocket | undefined
  readonly plain: PlainSocket | undefined
  reading: number
  /** Reading from this leg is paused because the other leg's queue is full. */
  paused = false
  corked = false
  waitingDrain = false
  /** Frame passthrough: the splitter reading this leg, and the gate on writes into this leg. */
  splitter: FrameSplitter | undefined
  gate: WriteGate | undefined
  /** Hands a control frame to `ws`'s own receiver (passthrough). */
  feedControl: ((frame: Buffer) => void) | undefined
  /** Heartbeat: a ping is out; a frame or pong came back; byte counters at the ping. */
  pinged = false
  seen = true
  private readAtPing = 0
  private flushedAtPing = -1

  constructor(socket: NodeWebSocket | PlainSocket, isWs: boolean, readonly isClient: boolean, reading: number) {
    if (isWs) {
      this.ws = socket as NodeWebSocket
      this.raw = getRawSocket(this.ws)
    }
    else {
      this.plain = socket as PlainSocket
    }
    this.reading = reading
  }

  /** Find the TCP socket under `ws` (an upstream has one only once its handshake completed). */
  bindSocket(): void {
    if (this.ws) this.raw = getRawSocket(this.ws)
  }

  get open(): boolean {
    return (this.ws ?? this.plain)!.readyState === WS_OPEN
  }

  /** Bytes queued toward this leg. */
  get queued(): number {
    return this.ws ? this.ws.bufferedAmount : this.plain!.bufferedAmount ?? 0
  }

  /** Send one message with its frame type. */
  send(data: any, isBinary: boolean): void {
    const ws = this.ws
    if (ws) {
      if (!this.corked) this.cork()
      ws.send(data, isBinary ? SEND_BINARY : SEND_TEXT)
    }
    else {
      this.plain!.send(isBinary ? data : asText(data))
    }
  }

  /** Write raw frame bytes (passthrough), around the gate that holds `ws`'s own writes. */
  write(slices: Buffer[]): void {
    const raw = this.raw!
    const write = this.gate ? this.gate.write : raw.write
    if (!this.corked) this.cork()
    for (let i = 0; i < slices.length; i++) write.call(raw, slices[i]!)
  }

  /**
   * A frame is streamed into this leg: hold `ws`'s writes on its socket until `endFrame`. The
   * gate is put on the socket the first time only, so idle connections carry none.
   */
  beginFrame(): void {
    (this.gate ??= gateWrites(this.raw!)).hold()
  }

  endFrame(): void {
    this.gate!.release()
  }

  /**
   * Frames relayed in the same tick (one read often holds many) leave in one write: the socket
   * is corked at the first frame and uncorked on the next tick. One syscall per batch instead
   * of one per frame is most of the cost of small messages.
   */
  private cork(): void {
    const raw = this.raw
    if (!raw) return
    this.corked = true
    raw.cork()
    process.nextTick(uncork, this)
  }

  uncork(): void {
    this.corked = false
    this.raw?.uncork()
  }

  pause(): void {
    this.paused = true
    this.ws!.pause()
  }

  resume(): void {
    this.paused = false
    this.ws!.resume()
  }

  /** Ping the leg, remembering what was read and written so far (any byte proves it alive). */
  ping(): void {
    const raw = this.raw
    if (raw) {
      this.readAtPing = raw.bytesRead
      // A ping queued behind output (or held behind a streamed frame) cannot be answered until
      // that output drains: the leg taking it counts as alive too.
      this.flushedAtPing = raw.writableLength > 0 || this.gate?.closed ? raw.bytesWritten - raw.writableLength : -1
    }
    this.pinged = true
    this.seen = false
    try { this.ws!.ping() }
    catch {}
  }

  /** Whether the leg showed life since the last ping. */
  get alive(): boolean {
    if (this.seen) return true
    const raw = this.raw
    if (!raw) return false
    return raw.bytesRead > this.readAtPing
      || (this.flushedAtPing >= 0 && raw.bytesWritten - raw.writableLength > this.flushedAtPing)
  }

  /**
   * Close with a close frame (`code` undefined: without a code), or drop the connection when a
   * frame streamed into this leg is unfinished: no close frame may land inside it.
   */
  close(code: number | undefined, reason: string | undefined): void {
    if (this.gate?.closed) return this.terminate()
    const socket = (this.ws ?? this.plain)!
    if (this.ws && this.ws.readyState === WS_CONNECTING) return this.terminate()
    try {
      if (code === undefined) socket.close()
      else socket.close(code, truncateReason(reason))
    }
    catch {
      // Never leave a leg open because a close argument was refused.
      this.terminate()
    }
  }

  terminate(): void {
    try {
      if (this.ws) this.ws.terminate()
      else if (this.plain!.terminate) this.plain!.terminate()
      else this.plain!.close()
    }
    catch {}
  }
}

function uncork(leg: Leg): void {
  leg.uncork()
}
