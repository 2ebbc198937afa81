/**
 * Limits against abuse: how many connections a proxy, an address or a user may hold (checked at
 * the upgrade, before anything is dialled), and how fast a client may send (checked per message).
 *
 * A connection's slot is taken in `upgrade` (a reservation) and handed to the connection in
 * `open`; it is given back exactly once: when the connection ends, whatever way it ends, or, for
 * an upgrade that never opens (the client left during the handshake), when the client's socket
 * closes or at the latest after {@link UNCLAIMED_MS}.
 */
import type { WebSocketProxyLimits } from './types'
import { userKey } from './pool'

/** A slot held by one upgrade or connection. */
export interface Reservation {
  /** The address counted (`undefined`: not counted by address, or not known yet). */
  ip: string | undefined
  readonly user: string | undefined
  released: boolean
  /** The connection owns it (released by the connection's end, not by the timer). */
  claimed: boolean
  timer: ReturnType<typeof setTimeout> | undefined
}

/** Why an upgrade was refused (429). */
export type LimitRefusal = 'connections' | 'perIp' | 'perUser'

/**
 * Milliseconds an upgrade that was accepted but never opened keeps its slot (when no socket can
 * be watched: crossws 0.4, Deno, Bun). `open` follows an accepted upgrade within the same turn on
 * Node and within a round trip elsewhere; a later `open` takes its slot back without a check.
 */
export const UNCLAIMED_MS = 2000

const REASONS: Record<LimitRefusal, string> = {
  connections: 'Too many connections',
  perIp: 'Too many connections from this address',
  perUser: 'Too many connections for this user',
}

/** The 429 body of a refusal: names the cap. */
export function refusalText(refusal: LimitRefusal): string {
  return REASONS[refusal]
}

/** Connection counts of one proxy (one route), per address and per user. */
export class ConnectionLimits {
  total = 0
  readonly byIp = new Map<string, number>()
  readonly byUser = new Map<string, number>()

  constructor(readonly caps: WebSocketProxyLimits) {}

  /** Whether any connection cap is set (else no reservation is made at all). */
  get counting(): boolean {
    const c = this.caps
    return c.connections !== undefined || c.perIp !== undefined || c.perUser !== undefined
  }

  /** Take a slot for `ip`/`user`, or say which cap refuses it. */
  reserve(ip: string | undefined, user: unknown): Reservation | LimitRefusal {
    const c = this.caps
    if (c.connections !== undefined && this.total >= c.connections) return 'connections'
    const ipKey = c.perIp !== undefined ? ip : undefined
    if (ipKey !== undefined && (this.byIp.get(ipKey) ?? 0) >= c.perIp!) return 'perIp'
    const userId = c.perUser !== undefined ? userKey(user) : undefined
    if (userId !== undefined && (this.byUser.get(userId) ?? 0) >= c.perUser!) return 'perUser'
    this.total++
    if (ipKey !== undefined) this.byIp.set(ipKey, (this.byIp.get(ipKey) ?? 0) + 1)
    if (userId !== undefined) this.byUser.set(userId, (this.byUser.get(userId) ?? 0) + 1)
    return { ip: ipKey, user: userId, released: false, claimed: false, timer: undefined }
  }

  /**
   * `open` on an adapter that showed `upgrade` no address (crossws 0.4's Node adapter): count the
   * peer's address now. Returns `false` when the address is over `perIp` (the caller refuses).
   */
  addAddress(r: Reservation, ip: string | undefined): boolean {
    const cap = this.caps.perIp
    if (cap === undefined || ip === undefined || r.ip !== undefined || r.released) return true
    const n = this.byIp.get(ip) ?? 0
    if (n >= cap) return false
    this.byIp.set(ip, n + 1)
    r.ip = ip
    return true
  }

  /** A slot released too early (its `open` came after UNCLAIMED_MS): count it again, unchecked. */
  retake(r: Reservation): void {
    if (!r.released) return
    r.released = false
    this.total++
    if (r.ip !== undefined) this.byIp.set(r.ip, (this.byIp.get(r.ip) ?? 0) + 1)
    if (r.user !== undefined) this.byUser.set(r.user, (this.byUser.get(r.user) ?? 0) + 1)
  }

  /** Give the slot back (once; later calls do nothing). */
  release(r: Reservation): void {
    if (r.released) return
    r.released = true
    clearTimeout(r.timer)
    this.total--
    if (r.ip !== undefined) decrement(this.byIp, r.ip)
    if (r.user !== undefined) decrement(this.byUser, r.user)
  }

  /** Counts now (`stats().limits`). */
  snapshot(): { connections: number, addresses: number, users: number } {
    return { connections: this.total, addresses: this.byIp.size, users: this.byUser.size }
  }
}

function decrement(map: Map<string, number>, key: string): void {
  const n = (map.get(key) ?? 1) - 1
  if (n <= 0) map.delete(key)
  else map.set(key, n)
}

/**
 * Token buckets of one client: `messagesPerSecond` and `bytesPerSecond`, each holding at most
 * one second's worth (the burst). `take` says whether the client is still within both.
 */
export class RateBuckets {
  private messages: number
  private bytes: number
  private last: number

  constructor(private readonly messageRate: number, private readonly byteRate: number) {
    this.messages = messageRate
    this.bytes = byteRate
    this.last = Date.now()
  }

  /** Spend `messages` and `bytes`; returns which rate is exceeded, or `undefined`. */
  take(messages: number, bytes: number): 'messages' | 'bytes' | undefined {
    const now = Date.now()
    const elapsed = now - this.last
    this.last = now
    if (this.messageRate > 0) {
      const refilled = this.messages + elapsed * this.messageRate / 1000
      this.messages = (refilled > this.messageRate ? this.messageRate : refilled) - messages
      if (this.messages < 0) return 'messages'
    }
    if (this.byteRate > 0) {
      const refilled = this.bytes + elapsed * this.byteRate / 1000
      this.bytes = (refilled > this.byteRate ? this.byteRate : refilled) - bytes
      if (this.bytes < 0) return 'bytes'
    }
    return undefined
  }
}
