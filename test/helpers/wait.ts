/**
 * Bounded waiting. Every wait in the suite goes through these, so none can hang.
 */
import { track } from './cleanup'

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

/** Rejects with `Timed out after <ms> ms: <label>` if `promise` does not settle in time. */
export function withTimeout<T>(promise: Promise<T>, ms: number, label: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${label}`)), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

/**
 * Polls `check` every `interval` ms until it returns true; rejects after `timeout` ms with
 * `label` and the last value of `describe()` (if given), so the failure says what was seen.
 */
export async function waitFor(
  check: () => boolean,
  { timeout = 2_000, interval = 5, label = 'condition', describe }: {
    timeout?: number
    interval?: number
    label?: string
    describe?: () => unknown
  } = {},
): Promise<void> {
  const deadline = Date.now() + timeout
  while (!check()) {
    if (Date.now() > deadline) {
      const seen = describe ? ` (last seen: ${JSON.stringify(describe())})` : ''
      throw new Error(`Timed out after ${timeout} ms waiting for ${label}${seen}`)
    }
    await sleep(interval)
  }
}

/**
 * Records every `unhandledRejection` of this process until the end of the test.
 * Assert `expect(rejections).toEqual([])` after letting the scenario settle.
 */
export function captureUnhandledRejections(): unknown[] {
  const rejections: unknown[] = []
  const listener = (reason: unknown) => { rejections.push(reason) }
  process.on('unhandledRejection', listener)
  track(() => { process.off('unhandledRejection', listener) })
  return rejections
}

/** A timer created while a {@link trackTimers} tracker was active and not yet fired or cleared. */
export interface PendingTimer {
  kind: 'timeout' | 'interval'
  delay: number
  /** Whether it keeps the process alive. */
  refed: boolean
  /** Where it was created (first frames of the stack). */
  createdAt: string
}

export interface TimerTracker {
  /**
   * Timers created since tracking started that have neither fired nor been cleared, leaving out
   * the harness's own, unref'ed intervals (a proxy-wide sweep that stops on its next tick holds
   * nothing alive) and unref'ed timers of Node's built-in undici (its idle connection pool).
   */
  pending: () => PendingTimer[]
  /** Restores the global timer functions (also done by `cleanup()`). */
  stop: () => void
}

/**
 * Tracks the timers created through the global `setTimeout`/`setInterval` from now until the
 * end of the test (`process.getActiveResourcesInfo()` cannot tell whose a timer is, and misses
 * unref'ed ones). Use it to assert a scenario leaves no timer behind.
 */
export function trackTimers(): TimerTracker {
  const original = {
    setTimeout: globalThis.setTimeout,
    setInterval: globalThis.setInterval,
    clearTimeout: globalThis.clearTimeout,
    clearInterval: globalThis.clearInterval,
  }
  const live = new Map<unknown, { kind: PendingTimer['kind'], delay: number, stack: string }>()

  const where = () => (new Error('timer').stack ?? '').split('\n').slice(3, 7).map(line => line.trim()).join(' < ')
  const patchedTimeout = ((callback: (...args: unknown[]) => void, delay?: number, ...args: unknown[]) => {
    const timer = original.setTimeout((...callArgs: unknown[]) => {
      live.delete(timer)
      callback(...callArgs)
    }, delay, ...args)
    live.set(timer, { kind: 'timeout', delay: delay ?? 0, stack: where() })
    return timer
  }) as typeof setTimeout
  const patchedInterval = ((callback: (...args: unknown[]) => void, delay?: number, ...args: unknown[]) => {
    const timer = original.setInterval(callback, delay, ...args)
    live.set(timer, { kind: 'interval', delay: delay ?? 0, stack: where() })
    return timer
  }) as typeof setInterval
  const clear = (timer: any) => {
    live.delete(timer)
    original.clearTimeout(timer)
  }
  Object.assign(patchedTimeout, original.setTimeout) // keeps util.promisify.custom
  globalThis.setTimeout = patchedTimeout
  globalThis.setInterval = patchedInterval
  globalThis.clearTimeout = clear as typeof clearTimeout
  globalThis.clearInterval = clear as typeof clearInterval

  let stopped = false
  const stop = () => {
    if (stopped) return
    stopped = true
    Object.assign(globalThis, original)
  }
  track(stop)

  return {
    pending: () => [...live].flatMap(([timer, info]) => {
      const handle = timer as NodeJS.Timeout & { _destroyed?: boolean }
      const refed = typeof handle.hasRef === 'function' ? handle.hasRef() : true
      if (handle._destroyed) return []
      if (info.stack.includes('/test/helpers/')) return []
      if (info.kind === 'interval' && !refed) return []
      // Node's built-in undici (the global WebSocket) keeps idle pool sockets on unref'ed timers.
      if (!refed && info.stack.includes('node:internal/deps/undici')) return []
      return [{ kind: info.kind, delay: info.delay, refed, createdAt: info.stack }]
    }),
    stop,
  }
}
