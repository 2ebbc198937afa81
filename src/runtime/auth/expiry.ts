/**
 * Session and token expiry of open connections: the handler schedules a 1008 close when
 * an authenticated connection opens and cancels it when the connection ends.
 */
import type { Peer } from 'crossws'

const MAX_TIMER_DELAY = 2 ** 31 - 1
const expiryTimers = new WeakMap<object, ReturnType<typeof setTimeout>>()

/** Cancel the expiry close scheduled for this connection context, if any. */
export function clearExpiry(context: object | undefined | null): void {
  if (!context) {
    return
  }
  const timer = expiryTimers.get(context)
  if (timer) {
    clearTimeout(timer)
    expiryTimers.delete(context)
  }
}

/**
 * Close the peer with 1008 (`reason`: `'Session expired'`, `'Token expired'`) once `expiresAt` passes. Chains timers past setTimeout's ~24.8-day
 * limit (a longer delay would fire at once) and re-checks the clock when a timer fires.
 */
export function scheduleExpiry(peer: Pick<Peer, 'close'>, context: object, expiresAt: number, reason = 'Session expired'): void {
  const arm = () => {
    expiryTimers.delete(context)
    const delay = expiresAt - Date.now()
    if (delay <= 0) {
      try {
        peer.close(1008, reason)
      }
      catch {}
      return
    }
    const timer = setTimeout(arm, Math.min(delay, MAX_TIMER_DELAY))
    timer.unref?.()
    expiryTimers.set(context, timer)
  }
  arm()
}
