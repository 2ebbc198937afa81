/**
 * Per-test resource tracking.
 *
 * Every helper that opens something (server, client, socket, listener) registers a closer here.
 * Test files call `afterEach(cleanup)`: closers run in reverse order of registration (clients
 * before the proxy before the upstream), each bounded in time, so a stuck socket can never hang
 * the suite.
 */

type Closer = () => unknown | Promise<unknown>

const closers: Closer[] = []

/** Registers `closer` to run at the next {@link cleanup}. Returns it, for chaining. */
export function track<T extends Closer>(closer: T): T {
  closers.push(closer)
  return closer
}

/** Runs every registered closer, newest first; each one gets at most `timeout` ms. */
export async function cleanup(timeout = 2_000): Promise<void> {
  const errors: unknown[] = []
  while (closers.length > 0) {
    const closer = closers.pop()!
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        Promise.resolve().then(closer),
        new Promise((resolve) => { timer = setTimeout(resolve, timeout) }),
      ])
    }
    catch (error) {
      errors.push(error)
    }
    finally {
      clearTimeout(timer)
    }
  }
  if (errors.length > 0) throw new AggregateError(errors, 'cleanup failed')
}
