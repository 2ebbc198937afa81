import type { ProxyConnection } from './connection'

/**
 * One sweep per proxy instance (not a timer per connection): every `interval` ms each live
 * connection pings its legs, and `timeout` ms later any leg that sent nothing back is closed.
 * The sweep stops when the proxy has no connections, so an idle proxy holds no timers.
 */
export class HeartbeatSweep {
  private pingTimer: ReturnType<typeof setInterval> | undefined
  private checkTimer: ReturnType<typeof setTimeout> | undefined

  constructor(
    private readonly connections: Set<ProxyConnection>,
    private readonly interval: number,
    private readonly timeout: number,
  ) {}

  /** Make sure the sweep runs (called when a connection starts). */
  ensure(): void {
    if (this.interval <= 0 || this.pingTimer !== undefined) return
    this.pingTimer = setInterval(this.sweep, this.interval)
    this.pingTimer.unref?.()
  }

  private readonly sweep = (): void => {
    if (this.connections.size === 0) {
      clearInterval(this.pingTimer)
      this.pingTimer = undefined
      return
    }
    // A previous round still pending is judged now, before its flags are reset.
    if (this.checkTimer !== undefined) this.check()
    for (const connection of this.connections) connection.ping()
    this.checkTimer = setTimeout(this.check, Math.min(this.timeout, this.interval))
    this.checkTimer.unref?.()
  }

  private readonly check = (): void => {
    clearTimeout(this.checkTimer)
    this.checkTimer = undefined
    for (const connection of [...this.connections]) connection.checkAlive()
  }
}
