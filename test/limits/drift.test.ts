/**
 * No drift: many connect/close cycles with abrupt endings (client TCP resets before and after the
 * upstream opened, upgrades abandoned right after the request, normal closes), 50 at a time,
 * leave every count at 0 (`stats().limits`, `stats().open`), and a cap of 50 per address still
 * admits exactly 50 new connections. One crossws line (0.3, what nitropack v2 runs). The clients
 * (churner.mjs) and the upstream run in their own processes: this process runs the proxy.
 *
 * DRIFT_CYCLES overrides the count (the acceptance test uses 20,000; see DEFAULT_CYCLES).
 */
import type { ChildProcess } from 'node:child_process'
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { cleanup, track, withTimeout, wsConnect } from '../helpers'
import { startUpstreamProcess } from '../faults/harness'
import { expectRefused, limitedProxy, limitsOf, waitLimits, ZERO } from './harness'

afterEach(() => cleanup())

/** Measured here (2 shared cores): about 700 cycles/s, so 20,000 fit in ~30 s. */
const DEFAULT_CYCLES = 20_000
const CYCLES = Number(process.env.DRIFT_CYCLES ?? DEFAULT_CYCLES)
const CONCURRENCY = 50
const CAPS = { connections: 1_000, perIp: 50, perUser: 200 }

const CHURNER = fileURLToPath(new URL('./churner.mjs', import.meta.url))

interface ChurnReport { ms: number, cpuMs: number, refused: number, byKind: Record<string, number> }

function churn(url: string, cycles: number, concurrency: number): Promise<ChurnReport> {
  const child: ChildProcess = fork(CHURNER, [url, String(cycles), String(concurrency)], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const exited = new Promise(resolve => child.once('exit', resolve))
  track(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await withTimeout(exited, 1_500, 'churner exit')
  })
  return withTimeout(new Promise<ChurnReport>((resolve, reject) => {
    child.on('message', (m: { type?: string, error?: string } & ChurnReport) => {
      if (m?.type === 'done') resolve(m)
      if (m?.type === 'failed') reject(new Error(`churner: ${m.error}`))
    })
    child.once('exit', code => reject(new Error(`churner exited (${code}) before reporting`)))
  }), 110_000, `${cycles} cycles`)
}

describe('no drift (crossws 0.3)', () => {
  it(`${CYCLES} cycles with abrupt closes (${CONCURRENCY} at a time) leave every count at 0; perIp 50 still admits 50`, { timeout: 120_000 }, async () => {
    const upstream = await startUpstreamProcess()
    const { proxy, server } = await limitedProxy('0.3', { target: upstream.url, limits: CAPS }, {
      user: request => ({ id: request.headers.get('x-user') ?? 'anonymous' }),
    })
    const started = Date.now()
    const cpuBefore = process.cpuUsage()
    const report = await churn(server.url, CYCLES, CONCURRENCY)
    await waitLimits(proxy, ZERO, `after ${CYCLES} cycles`, 3_000)
    const settledMs = Date.now() - started
    const cpu = process.cpuUsage(cpuBefore)
    const proxyCpuMs = Math.round((cpu.user + cpu.system) / 1000)
    const stats = proxy.stats()
    console.info(`[limits] drift: ${CYCLES} cycles in ${report.ms} ms (${Math.round(CYCLES / (report.ms / 1000))}/s), counts at 0 after ${settledMs} ms; CPU: proxy process ${proxyCpuMs} ms, clients ${report.cpuMs} ms; opened ${stats.opened}, 429 retries ${report.refused}, kinds ${JSON.stringify(report.byKind)}, closed ${JSON.stringify(Object.fromEntries(Object.entries(stats.closed).filter(([, n]) => n > 0)))}`)
    expect(stats.open).toBe(0)
    expect(stats.limits).toEqual(ZERO)
    // Nothing drifted the other way either: every opened connection was counted closed once.
    const closedTotal = Object.values(stats.closed).reduce((a, b) => a + b, 0)
    expect(closedTotal).toBe(stats.opened)
    // Every upgrade but the abandoned ones opened (abandoned ones may or may not have).
    expect(stats.opened).toBeGreaterThanOrEqual(CYCLES - report.byKind['abort-upgrade']!)

    // The cap still admits exactly 50 from 127.0.0.1, and refuses the 51st.
    const clients = []
    for (let i = 0; i < 50; i++) clients.push(await wsConnect(server.url, { headers: { 'x-user': `fresh${i}` } }))
    expect(limitsOf(proxy)).toEqual({ connections: 50, addresses: 1, users: 50 })
    await expectRefused(server.url, 'perIp', undefined, { 'x-user': 'fresh-extra' })
    await Promise.all(clients.map(client => client.close(1000)))
    await waitLimits(proxy, ZERO, 'after the 50 closed')
  })
})
