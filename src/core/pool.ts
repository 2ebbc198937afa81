/**
 * The upstreams of one proxy: which one a connection dials, which ones are healthy.
 *
 * Upstreams are keyed by origin (`ws://10.0.0.1:4000`, or the socket path of a `ws+unix:` URL):
 * the path a connection dials on it may differ per connection (wildcard targets), its health and
 * its count of connections do not. Health is passive, as nginx's `max_fails`/`fail_timeout`
 * (failed dials take an upstream out for `failTimeout`, then one trial dial), and optionally
 * active (`healthCheck`: a periodic HTTP GET or WebSocket handshake).
 */
import type { ProxyPeer, WebSocketProxyBalance, WebSocketProxyHashKey, WebSocketProxyHealthCheck, WebSocketProxyUpstreamStats } from './types'

/** What the pool knows about one upstream. */
export interface UpstreamState {
  readonly key: string
  /** A URL seen for this upstream (the target with its path), dialled by a handshake check. */
  probeUrl: URL
  /** Connections assigned to it now: dialling or open. */
  open: number
  /** Dials that opened. */
  opened: number
  /** Dials that failed before the upstream opened. */
  failedDials: number
  /** Failures counted in the current `failTimeout` window. */
  fails: number
  windowStart: number
  /** Passive health: no dial before this time (0: up). */
  downUntil: number
  /** Passive health: the one trial dial after `downUntil` is in flight. */
  trial: boolean
  /** Active health: the last check passed (true until a check fails). */
  checked: boolean
}

/** Pool settings (resolved options). */
export interface PoolOptions {
  balance: WebSocketProxyBalance
  hashKey: WebSocketProxyHashKey | undefined
  maxFails: number
  failTimeout: number
  healthCheck: WebSocketProxyHealthCheck | undefined
}

/** The key of the upstream a URL points at. */
export function upstreamKey(url: URL): string {
  if (url.protocol === 'ws+unix:') {
    const colon = url.pathname.indexOf(':')
    return `ws+unix:${colon === -1 ? url.pathname : url.pathname.slice(0, colon)}`
  }
  return `${url.protocol}//${url.host}`
}

export class UpstreamPool {
  readonly upstreams = new Map<string, UpstreamState>()
  private turn = 0
  private checkTimer: ReturnType<typeof setInterval> | undefined
  private checking = false

  constructor(readonly o: PoolOptions, private readonly runCheck: (state: UpstreamState) => Promise<boolean>) {}

  /** The state of the upstream `url` points at (created on first sight). */
  register(url: URL): UpstreamState {
    const key = upstreamKey(url)
    let state = this.upstreams.get(key)
    if (!state) {
      state = {
        key,
        probeUrl: url,
        open: 0,
        opened: 0,
        failedDials: 0,
        fails: 0,
        windowStart: 0,
        downUntil: 0,
        trial: false,
        checked: true,
      }
      this.upstreams.set(key, state)
      if (this.o.healthCheck) this.startChecks()
    }
    return state
  }

  /**
   * Pick the upstream to dial among `candidates` (one URL per upstream), skipping those already
   * `tried` by this connection and those out of service. `undefined`: none is left.
   */
  pick(candidates: URL[], states: UpstreamState[], tried: number, peer: ProxyPeer): number {
    const now = Date.now()
    // A pool of one is never taken out by passive health (nginx does the same): there would be
    // nothing to fail over to, and refusing every client for `failTimeout` helps nobody.
    const passive = candidates.length > 1 && this.o.maxFails > 0
    let available = 0
    for (let i = 0; i < states.length; i++) {
      if ((tried & (1 << i)) === 0 && this.usable(states[i]!, now, passive)) available |= 1 << i
    }
    if (available === 0) return -1
    let index = -1
    const balance = this.o.balance
    if (balance === 'hash') {
      const key = this.o.hashKey ? hashKeyOf(this.o.hashKey, peer) : undefined
      if (key !== undefined) index = rendezvous(key, states, available)
    }
    if (index === -1) {
      if (balance === 'round-robin') index = this.nextInTurn(states.length, available)
      else if (balance === 'random') index = randomOf(states.length, available)
      else index = this.leastConnections(states, available)
    }
    const state = states[index]!
    if (passive && state.downUntil !== 0) state.trial = true
    return index
  }

  private usable(state: UpstreamState, now: number, passive: boolean): boolean {
    if (!state.checked) return false
    if (!passive || state.downUntil === 0) return true
    return now >= state.downUntil && !state.trial
  }

  private nextInTurn(count: number, available: number): number {
    for (let step = 0; step < count; step++) {
      const i = (this.turn + step) % count
      if (available & (1 << i)) {
        this.turn = i + 1
        return i
      }
    }
    return -1
  }

  /** Fewest connections; ties go in turn, so a burst on an idle pool spreads evenly. */
  private leastConnections(states: UpstreamState[], available: number): number {
    const count = states.length
    let best = -1
    let bestOpen = Infinity
    const start = this.turn % count
    for (let step = 0; step < count; step++) {
      const i = (start + step) % count
      if ((available & (1 << i)) === 0) continue
      const open = states[i]!.open
      if (open < bestOpen) {
        best = i
        bestOpen = open
      }
    }
    this.turn = best + 1
    return best
  }

  /**
   * A dial on `state` failed before the upstream opened. `health: false`: counted in
   * `failedDials` only (a WHATWG dial that errored: maybe the client's own refusal).
   */
  failed(state: UpstreamState, health = true): void {
    state.failedDials++
    if (!health) {
      state.trial = false
      return
    }
    const now = Date.now()
    if (state.trial) {
      state.trial = false
      state.downUntil = now + this.o.failTimeout
      return
    }
    if (now - state.windowStart > this.o.failTimeout) {
      state.windowStart = now
      state.fails = 0
    }
    if (++state.fails >= this.o.maxFails && this.o.maxFails > 0) {
      state.fails = 0
      state.downUntil = now + this.o.failTimeout
    }
  }

  /** A dial on `state` opened: it is back in service. */
  succeeded(state: UpstreamState): void {
    state.opened++
    this.answered(state)
  }

  /** The upstream answered (opened, or refused with a 4xx): it is alive, back in service. */
  answered(state: UpstreamState): void {
    state.fails = 0
    state.downUntil = 0
    state.trial = false
  }

  /** A trial dial ended without a verdict (its client left): the next connection may try again. */
  abandonTrial(state: UpstreamState): void {
    state.trial = false
  }

  /** Per-upstream counters, for `stats()`. */
  snapshot(): Record<string, WebSocketProxyUpstreamStats> {
    const now = Date.now()
    const result: Record<string, WebSocketProxyUpstreamStats> = {}
    for (const state of this.upstreams.values()) {
      result[state.key] = {
        open: state.open,
        opened: state.opened,
        failedDials: state.failedDials,
        // A pool of one is never taken out by passive health (see `pick`).
        healthy: state.checked && (this.upstreams.size === 1 || state.downUntil === 0 || now >= state.downUntil),
      }
    }
    return result
  }

  private startChecks(): void {
    if (this.checkTimer !== undefined) return
    const interval = this.o.healthCheck!.interval
    this.checkTimer = setInterval(() => { void this.checkAll() }, interval)
    this.checkTimer.unref?.()
  }

  /** One round of active checks; a round still running when the next is due is skipped. */
  async checkAll(): Promise<void> {
    if (this.checking) return
    this.checking = true
    try {
      await Promise.all([...this.upstreams.values()].map(async (state) => {
        let ok = false
        try { ok = await this.runCheck(state) }
        catch {}
        state.checked = ok
      }))
    }
    finally {
      this.checking = false
    }
  }

  /** Stop the active checks (the proxy is shut down). */
  stop(): void {
    clearInterval(this.checkTimer)
    this.checkTimer = undefined
  }
}

// --- hashing -----------------------------------------------------------------------------------

/** The hash key of a connection, or `undefined` when it has none (then: least connections). */
export function hashKeyOf(hashKey: WebSocketProxyHashKey, peer: ProxyPeer): string | undefined {
  if (typeof hashKey === 'function') {
    const key = hashKey(peer)
    return key === undefined || key === null || key === '' ? undefined : String(key)
  }
  if (hashKey === 'ip') return peer.remoteAddress || undefined
  if (hashKey === 'user') return userKey(peer.context?.user)
  const colon = hashKey.indexOf(':')
  const kind = hashKey.slice(0, colon)
  const name = hashKey.slice(colon + 1)
  if (kind === 'header') return peer.request.headers.get(name) || undefined
  if (kind === 'query') return new URL(peer.request.url).searchParams.get(name) || undefined
  if (kind === 'cookie') return cookieValue(peer.request.headers.get('cookie'), name)
  return undefined
}

/** A user's stable key: its `id` (or `sub`, `email`), else the whole object as JSON. */
export function userKey(user: unknown): string | undefined {
  if (user === undefined || user === null) return undefined
  if (typeof user !== 'object') return String(user)
  const u = user as Record<string, unknown>
  for (const field of ['id', 'sub', 'email']) {
    const value = u[field]
    if (typeof value === 'string' || typeof value === 'number') return String(value)
  }
  return JSON.stringify(user)
}

function cookieValue(header: string | null, name: string): string | undefined {
  if (!header) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq !== -1 && part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim()
      return value || undefined
    }
  }
  return undefined
}

/**
 * Rendezvous (highest random weight) hashing: every upstream scores `hash(key, upstream)` and the
 * highest available one wins. The same key picks the same upstream on every instance that has
 * the same upstreams, and taking one upstream away moves only the keys it held.
 */
function rendezvous(key: string, states: UpstreamState[], available: number): number {
  let best = -1
  let bestScore = -1
  for (let i = 0; i < states.length; i++) {
    if ((available & (1 << i)) === 0) continue
    const score = fnv1a(`${key}\u0000${states[i]!.key}`)
    if (score > bestScore) {
      best = i
      bestScore = score
    }
  }
  return best
}

/** 32-bit FNV-1a with a final avalanche (murmur3's fmix32), as an unsigned number. */
function fnv1a(text: string): number {
  let h = 0x811C9DC5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85EBCA6B)
  h ^= h >>> 13
  h = Math.imul(h, 0xC2B2AE35)
  h ^= h >>> 16
  return h >>> 0
}

function randomOf(count: number, available: number): number {
  const indexes: number[] = []
  for (let i = 0; i < count; i++) if (available & (1 << i)) indexes.push(i)
  return indexes[Math.floor(Math.random() * indexes.length)]!
}
