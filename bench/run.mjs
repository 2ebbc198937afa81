// Benchmark orchestrator: `npm run bench` (see README, "Benchmarks").
//   node bench/run.mjs [--quick] [--reps=N] [--workloads=latency,small,large,idle,slow,upload]
//                      [--targets=direct,pipe,crossws04,ours-0.3,ours-0.4,pool-0.3,limits-0.3,observe-0.3[,base-0.3,base-0.4]]
//                      [--baseline=<git ref> | --baseline-module=<path of an index.mjs>]
//                      [--no-write] [--bufferutil] [--rss-cap=<MiB>]
// Ours is ../dist/index.mjs (`npm run bench` builds first), or BENCH_OURS_MODULE=<absolute path>.
// The baseline (targets base-0.3 and base-0.4, the same relay from another build, beside ours in
// the same run): --baseline=<ref> checks <ref> out in a temporary git worktree under the OS temp
// directory (node_modules linked to this project's), builds it with its own `npm run build`,
// copies its dist/ aside and removes the worktree before the first cell; --baseline-module=<path>
// loads an existing build instead. Without --targets, base-0.3/base-0.4 run beside ours-0.3/ours-0.4.
// Each cell (workload × target × repetition) runs in fresh processes: the upstream
// (bench/upstream.mjs), the proxy (bench/proxy.mjs, absent for `direct`) and the load
// generator (bench/client.mjs). Repetitions interleave the targets so that noise from the
// shared machine spreads evenly. Prints a markdown table of medians and writes
// bench/results/latest.{md,json}.
import { fork, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')
const MiB = 1024 * 1024
const UPLOAD_RSS_LIMIT = 200 * MiB // the upload workload's requirement for ours (peak RSS below this)
const CPU_VS_BASE_LIMIT = 1.1 // ours ÷ base CPU per message, small and large
const SNAPSHOTS = join(root, 'node_modules/.cache/nitro-ws-proxy-bench')

// Cleanup (the dist/ snapshots, a baseline worktree) also on Ctrl-C: exit() runs 'exit' listeners.
process.once('SIGINT', () => process.exit(130))
process.once('SIGTERM', () => process.exit(143))

// ---------------------------------------------------------------- options
const args = process.argv.slice(2)
const flag = (name) => {
  const hit = args.find(a => a === `--${name}` || a.startsWith(`--${name}=`))
  return hit === undefined ? undefined : (hit.includes('=') ? hit.slice(hit.indexOf('=') + 1) : true)
}
// A proxy past this is killed (slow, upload): the result is already clear. --rss-cap=<MiB> for trials.
const SLOW_RSS_CAP = Number(flag('rss-cap') ?? 3 * 1024) * MiB
if (!(SLOW_RSS_CAP > 0)) throw new TypeError('[bench] --rss-cap must be a positive number of MiB.')
const quick = flag('quick') === true || process.env.BENCH_QUICK === '1'
const reps = Number(flag('reps') ?? (quick ? 1 : 3))
const ALL_WORKLOADS = ['latency', 'small', 'large', 'idle', 'slow', 'upload']
// pool-0.3: ours on crossws 0.3 with a pool of 3 upstreams; limits-0.3: with every limit on;
// observe-0.3: with the metrics and the access log on (all three: small and latency workloads only).
const ALL_TARGETS = ['direct', 'pipe', 'crossws04', 'ours-0.3', 'ours-0.4', 'pool-0.3', 'limits-0.3', 'observe-0.3']
const LIMITS_CPU_LIMIT = 1.05 // limits-0.3 ÷ ours-0.3 CPU per 64 B message
const OBSERVE_CPU_LIMIT = 1.05 // observe-0.3 (metrics and access log on) ÷ ours-0.3 CPU per 64 B message
const POOL_SIZE = 3
const POOL_CPU_LIMIT = 1.1 // pool-0.3 ÷ ours-0.3 CPU per 64 B message
const BASE_TARGETS = ['base-0.3', 'base-0.4'] // run only with --baseline or --baseline-module
const workloads = String(flag('workloads') ?? ALL_WORKLOADS.join(',')).split(',')
let targets = String(flag('targets') ?? ALL_TARGETS.join(',')).split(',')
for (const w of workloads) if (!ALL_WORKLOADS.includes(w)) throw new TypeError(`[bench] Unknown workload "${w}"; use ${ALL_WORKLOADS.join(', ')}.`)
for (const t of targets) if (![...ALL_TARGETS, ...BASE_TARGETS].includes(t)) throw new TypeError(`[bench] Unknown target "${t}"; use ${[...ALL_TARGETS, ...BASE_TARGETS].join(', ')}.`)
if (!Number.isInteger(reps) || reps < 1 || reps > 20) throw new TypeError('[bench] --reps must be an integer from 1 to 20.')
const baselineRef = flag('baseline')
const baselineModuleFlag = flag('baseline-module')
if (baselineRef === true || baselineModuleFlag === true) throw new TypeError('[bench] Use --baseline=<git ref> or --baseline-module=<path of an index.mjs>.')
if (baselineRef && baselineModuleFlag) throw new TypeError('[bench] --baseline and --baseline-module exclude each other.')
const withBaseline = !!(baselineRef || baselineModuleFlag)
if (!withBaseline && targets.some(t => BASE_TARGETS.includes(t))) throw new TypeError('[bench] Targets base-0.3/base-0.4 need --baseline=<git ref> or --baseline-module=<path>.')
if (withBaseline && !targets.some(t => BASE_TARGETS.includes(t))) {
  // Each base-* right after its ours-*: the pair runs back to back in every repetition.
  targets = targets.flatMap(t => t.startsWith('ours-') ? [t, t.replace('ours-', 'base-')] : [t])
}

const notes = []
// By default every `ws` (the adapters', the relays', the load generator's) masks in JavaScript,
// so the rows compare the relays themselves. `--bufferutil` measures native masking instead
// (crossws 0.3's bundled `ws` cannot load it: its side stays in JavaScript).
const nativeMasking = flag('bufferutil') === true
if (nativeMasking) notes.push('--bufferutil: `ws` masks natively where it can load bufferutil (not in crossws 0.3\'s bundled copy).')
else {
  process.env.WS_NO_BUFFER_UTIL = '1'
  notes.push('WS_NO_BUFFER_UTIL=1: every `ws` masks in JavaScript (`--bufferutil` measures native masking).')
}
const userModule = process.env.BENCH_OURS_MODULE
const dist = userModule || join(root, 'dist/index.mjs')
let oursModule = dist
if (userModule) notes.push(`ours loaded from BENCH_OURS_MODULE=${userModule}.`)
if (!existsSync(dist)) {
  if (targets.some(t => t.startsWith('ours'))) notes.push('dist/index.mjs is missing (run `npm run build`): ours was skipped.')
  targets = targets.filter(t => !t.startsWith('ours'))
}
else if (!userModule) {
  if (Math.max(newestMtime(join(root, 'src/core')), statSync(join(root, 'src/index.ts')).mtimeMs) > statSync(dist).mtimeMs)
    notes.push('dist/index.mjs is older than src/core: ours ran from a stale build (`npm run bench` builds first).')
  // Snapshot dist/ so that a rebuild during the run (unbuild cleans dist/) cannot break it.
  oursModule = join(snapshotDist(join(root, 'dist'), `dist-${process.pid}`), 'index.mjs')
}

// The baseline: the module that base-0.3 and base-0.4 load.
let baseModule
let baseline // { ref, commit, subject } or { module }, for the report
if (baselineModuleFlag) {
  baseModule = resolve(String(baselineModuleFlag))
  if (!existsSync(baseModule)) throw new TypeError(`[bench] --baseline-module: ${baseModule} does not exist.`)
  baseline = { module: baseModule }
  notes.push(`baseline (base-*) loaded from --baseline-module=${baseModule}.`)
}
else if (baselineRef && targets.some(t => t.startsWith('base-'))) {
  baseline = buildBaseline(String(baselineRef))
  baseModule = join(baseline.dist, 'index.mjs')
  notes.push(`baseline (base-*): ${baseline.ref} = ${baseline.commit.slice(0, 10)} "${baseline.subject}", built by its own \`npm run build\` in a temporary git worktree.`)
}
const relayModule = { 'ours-0.3': oursModule, 'ours-0.4': oursModule, 'pool-0.3': oursModule, 'limits-0.3': oursModule, 'observe-0.3': oursModule, 'base-0.3': baseModule, 'base-0.4': baseModule }

/** Copies a dist/ under node_modules/ (so that bare imports resolve to this project's packages), removed on exit. */
function snapshotDist(from, name) {
  const snapshot = join(SNAPSHOTS, name)
  cpSync(from, snapshot, { recursive: true })
  process.on('exit', () => rmSync(snapshot, { recursive: true, force: true }))
  return snapshot
}

function git(...argv) {
  const r = spawnSync('git', argv, { cwd: root, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`[bench] git ${argv.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`)
  return r.stdout.trim()
}

/**
 * Builds <ref> in a temporary git worktree (its own build script, this project's node_modules
 * through a symlink), snapshots its dist/ and removes the worktree, all before the first cell.
 */
function buildBaseline(ref) {
  const commit = git('rev-parse', '--verify', '--end-of-options', `${ref}^{commit}`)
  const full = git('log', '-1', '--format=%s', commit)
  const subject = full.length > 72 ? `${full.slice(0, 71)}…` : full
  const tmp = mkdtempSync(join(os.tmpdir(), 'nitro-ws-proxy-bench-base-'))
  const tree = join(tmp, 'tree')
  const link = join(tree, 'node_modules')
  let removed = false
  const remove = () => {
    if (removed) return
    removed = true
    // The link first, so that nothing can ever reach this project's node_modules through it.
    try {
      unlinkSync(link)
    }
    catch {
      // never linked: the worktree was not created
    }
    spawnSync('git', ['worktree', 'remove', '--force', tree], { cwd: root, stdio: 'ignore' })
    rmSync(tmp, { recursive: true, force: true })
    spawnSync('git', ['worktree', 'prune'], { cwd: root, stdio: 'ignore' })
  }
  process.on('exit', remove) // should this process die while building
  try {
    console.log(`[bench] baseline: building ${ref} (${commit.slice(0, 10)}) in ${tree} ...`)
    git('worktree', 'add', '--detach', tree, commit)
    symlinkSync(join(root, 'node_modules'), link, 'dir')
    const t0 = performance.now()
    const build = spawnSync('npm', ['run', 'build'], { cwd: tree, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 * MiB })
    if (build.status !== 0 || !existsSync(join(tree, 'dist/index.mjs'))) {
      const out = `${build.stdout ?? ''}${build.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n')
      throw new Error(`[bench] baseline: \`npm run build\` of ${ref} failed (${build.error?.message ?? `exit ${build.status ?? build.signal}`}):\n${out}`)
    }
    console.log(`[bench] baseline: built in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    return { ref, commit, subject, dist: snapshotDist(join(tree, 'dist'), `base-${commit.slice(0, 10)}-${process.pid}`) }
  }
  finally {
    remove()
  }
}

const d = quick ? 0.35 : 1 // duration scale
const PARAMS = {
  latency: { warmupCount: 2000, warmupMs: 300 * d, maxCount: 100_000, durationMs: 1500 * d },
  small: { connections: 50, window: 20, size: 64, warmupMs: 500 * d, durationMs: 1500 * d, maxCount: 5_000_000 },
  large: { connections: 8, window: 4, size: 64 * 1024, warmupMs: 500 * d, durationMs: 1500 * d, maxCount: 500_000 },
  idle: { connections: 1000, batch: 100, warmupConnections: 20, settleMs: 500 },
  slow: { sampleMs: quick ? 2000 : 5000 },
  // 20 clients each upload ONE 50 MiB binary frame, paced over durationMs (see client.mjs).
  upload: { clients: 20, frameBytes: 50 * MiB, sliceBytes: 64 * 1024, tickMs: 10, durationMs: quick ? 5000 : 8000, timeoutMs: 40_000 },
}
// `direct` has no proxy process: nothing to measure for idle, slow and upload.
const applies = (w, t) => !(t === 'direct' && (w === 'idle' || w === 'slow' || w === 'upload'))
  && !((t.startsWith('pool') || t.startsWith('limits') || t.startsWith('observe')) && w !== 'small' && w !== 'latency')

// ---------------------------------------------------------------- process helpers
function newestMtime(dir) {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs)
  }
  return newest
}

function spawn(file, argv, execArgv = []) {
  const child = fork(join(here, file), argv, { cwd: root, execArgv, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
  child.stderrTail = ''
  child.stderr.on('data', (chunk) => {
    child.stderrTail = (child.stderrTail + chunk).slice(-2000)
  })
  child.exited = new Promise(resolve => child.once('exit', resolve))
  return child
}

function waitMessage(child, match, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`${what}: timed out after ${timeoutMs} ms`)), timeoutMs)
    const onMessage = (m) => {
      if (match(m)) done(null, m)
    }
    const onExit = code => done(new Error(`${what}: process exited (${code}): ${firstError(child.stderrTail)}`))
    function done(err, m) {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
      err ? reject(err) : resolve(m)
    }
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}

function firstError(stderr) {
  const lines = stderr.split('\n').map(l => l.trim()).filter(Boolean)
  return lines.find(l => /^\w*Error\b|^\[/.test(l)) ?? lines.at(-1) ?? 'no stderr'
}

let askSeq = 0
function ask(child, cmd, extra = {}) {
  const id = `q${++askSeq}`
  const reply = waitMessage(child, m => m?.id === id, 20_000, cmd)
  child.send({ cmd, id, ...extra })
  return reply
}

/** VmRSS (resident now) or VmHWM (peak resident) of a process, in bytes, from /proc. */
function readRss(pid, field = 'VmRSS') {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : Number.NaN
  }
  catch {
    return Number.NaN
  }
}

/**
 * Samples a process's RSS from /proc every 100 ms (independent of its event loop) until stop();
 * past SLOW_RSS_CAP it kills the process (SIGKILL) and sets `capped`.
 */
function startSampler(child, intervalMs = 100) {
  const sampler = { samples: [], capped: false, stopped: false }
  const t0 = performance.now()
  const loop = (async () => {
    for (let i = 0; !sampler.stopped; i++) {
      const rss = readRss(child.pid)
      sampler.samples.push({ t: Math.round(performance.now() - t0), rss })
      if (rss > SLOW_RSS_CAP) {
        sampler.capped = true
        child.kill('SIGKILL')
        return
      }
      await sleep(Math.max(0, t0 + (i + 1) * intervalMs - performance.now()))
    }
  })()
  sampler.stop = async () => {
    sampler.stopped = true
    await loop
  }
  return sampler
}

const sleep = ms => new Promise(r => setTimeout(r, ms))

async function killAll(children) {
  for (const c of children) {
    if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  }
  await Promise.all(children.filter(Boolean).map(c => c.exited))
}

// ---------------------------------------------------------------- one cell
async function runCell(workload, target) {
  const children = []
  let sampler
  try {
    const upstream = spawn('upstream.mjs', [workload === 'slow' ? 'push' : workload === 'upload' ? 'ack' : 'echo'])
    children.push(upstream)
    const { port: upPort } = await waitMessage(upstream, m => m?.type === 'ready', 10_000, 'upstream start')
    let upstreamUrl = `ws://127.0.0.1:${upPort}/bench`
    if (target.startsWith('pool')) {
      // The pool's other upstreams: the same echo server, in their own processes.
      for (let i = 1; i < POOL_SIZE; i++) {
        const extra = spawn('upstream.mjs', ['echo'])
        children.push(extra)
        const { port } = await waitMessage(extra, m => m?.type === 'ready', 10_000, 'pool upstream start')
        upstreamUrl += `,ws://127.0.0.1:${port}/bench`
      }
    }
    let proxy
    let url = upstreamUrl
    if (target !== 'direct') {
      proxy = spawn('proxy.mjs', [target, upstreamUrl, ...(relayModule[target] ? [relayModule[target]] : [])], ['--expose-gc'])
      children.push(proxy)
      const { port } = await waitMessage(proxy, m => m?.type === 'ready', 15_000, `${target} start`)
      url = `ws://127.0.0.1:${port}/bench`
    }
    const client = spawn('client.mjs', [workload, url, JSON.stringify(PARAMS[workload])])
    children.push(client)

    const marks = {}
    let samples
    let capped = false
    let upstreamStats
    let hwm
    client.on('message', async (m) => {
      if (m?.type !== 'mark') return
      try {
        // upload: RSS sampled in the background from the 'start' mark to the 'stop' mark.
        if (m.sample === 'start' && proxy) sampler = startSampler(proxy)
        if (m.sample === 'stop' && sampler) {
          await sampler.stop()
          capped = sampler.capped
          if (!capped) hwm = readRss(proxy.pid, 'VmHWM')
          upstreamStats = await ask(upstream, 'stats')
        }
        if (m.sampleMs && proxy) {
          // RSS from /proc every 100 ms: does not depend on the proxy's event loop.
          samples = []
          const t0 = performance.now()
          for (let i = 0; i <= m.sampleMs / 100; i++) {
            const rss = readRss(proxy.pid)
            samples.push({ t: Math.round(performance.now() - t0), rss })
            if (rss > SLOW_RSS_CAP) {
              capped = true
              break
            }
            await sleep(Math.max(0, t0 + (i + 1) * 100 - performance.now()))
          }
          upstreamStats = await ask(upstream, 'stats')
        }
        if (proxy && !capped) marks[m.name] = await ask(proxy, 'usage', { gc: !!m.gc })
      }
      catch (error) {
        marks[m.name] = { error: error.message }
      }
      if (client.connected) client.send({ type: 'ack', id: m.id })
    })
    const budget = workload === 'slow' ? PARAMS.slow.sampleMs + 40_000 : workload === 'upload' ? PARAMS.upload.timeoutMs + 40_000 : 90_000
    const result = await waitMessage(client, m => m?.type === 'result' || m?.type === 'error', budget, `${workload} client`)
    if (result.type === 'error') throw new Error(`client: ${result.message}`)
    if (sampler) samples = sampler.samples
    return summarize(workload, result, marks, { samples, capped, upstreamStats, hwm })
  }
  finally {
    await sampler?.stop()
    await killAll(children)
  }
}

function cpuMicros(a, b) {
  if (!a?.cpu || !b?.cpu) return Number.NaN
  return (b.cpu.user - a.cpu.user) + (b.cpu.system - a.cpu.system)
}

function summarize(workload, r, marks, extra) {
  switch (workload) {
    case 'latency':
      return { p50: r.p50, p99: r.p99, msgPerSec: Number.NaN, cpuPerMsg: cpuMicros(marks.start, marks.end) / r.messages, messages: r.messages, stats: marks.end?.stats }
    case 'small':
    case 'large':
      return { msgPerSec: r.msgPerSec, cpuPerMsg: cpuMicros(marks.start, marks.end) / r.messages, messages: r.messages, elapsedMs: r.elapsedMs, stats: marks.end?.stats }
    case 'idle':
      return {
        kibPerConn: (marks.after?.rss - marks.before?.rss) / 1024 / r.connections,
        heapKibPerConn: (marks.after?.heapUsed - marks.before?.heapUsed) / 1024 / r.connections,
        rssBefore: marks.before?.rss,
        rssAfter: marks.after?.rss,
        connections: r.connections,
      }
    case 'slow': {
      const s = extra.samples ?? []
      const at = t => s.reduce((best, x) => Math.abs(x.t - t) < Math.abs(best.t - t) ? x : best, s[0] ?? { rss: Number.NaN }).rss
      const last = s.at(-1)
      return {
        peakMiB: Math.max(...s.map(x => x.rss)) / MiB,
        startMiB: (s[0]?.rss ?? Number.NaN) / MiB,
        at1sMiB: at(1000) / MiB,
        lastMiB: (last?.rss ?? Number.NaN) / MiB,
        lastT: last?.t,
        growth: (last?.rss ?? Number.NaN) / at(1000),
        capped: extra.capped,
        upstreamSentMiB: extra.upstreamStats ? extra.upstreamStats.sentBytes / MiB : Number.NaN,
        curveMiB: s.filter((_, i) => i % 5 === 0).map(x => Math.round(x.rss / MiB)),
      }
    }
    case 'upload': {
      const s = extra.samples ?? []
      const sampledPeak = Math.max(...s.map(x => x.rss).filter(Number.isFinite))
      // The kernel's high-water marks (/proc VmHWM, getrusage) catch a peak between two samples.
      const peak = Math.max(sampledPeak, ...[extra.hwm, marks.end?.maxRss].filter(Number.isFinite))
      return {
        peakMiB: peak / MiB,
        sampledPeakMiB: sampledPeak / MiB,
        startMiB: (marks.start?.rss ?? Number.NaN) / MiB,
        capped: extra.capped,
        clients: r.clients,
        completed: r.completed,
        failures: r.failures,
        writtenS: (r.writtenMs ?? Number.NaN) / 1000,
        lastAckS: (r.lastAckMs ?? Number.NaN) / 1000,
        cpuS: cpuMicros(marks.start, marks.end) / 1e6,
        upstreamReceivedMiB: extra.upstreamStats ? extra.upstreamStats.receivedBytes / MiB : Number.NaN,
        curveMiB: s.filter((_, i) => i % 5 === 0).map(x => Math.round(x.rss / MiB)),
      }
    }
  }
}

// ---------------------------------------------------------------- run
const startedAt = new Date()
const loadBefore = os.loadavg()
const raw = {} // raw[workload][target] = [cell results]
console.log(`nitro-ws-proxy bench: ${reps} repetition(s)${quick ? ' (quick)' : ''}, Node ${process.version}, targets ${targets.join(', ')}`)
for (const note of notes) console.log(`note: ${note}`)
for (const workload of workloads) {
  raw[workload] = {}
  for (let rep = 0; rep < reps; rep++) {
    // Every other repetition in reverse order: neither member of a pair (ours-0.3 then base-0.3)
    // always runs first.
    for (const target of rep % 2 ? targets.toReversed() : targets) {
      if (!applies(workload, target)) continue
      const list = (raw[workload][target] ??= [])
      const t0 = performance.now()
      let res
      try {
        res = await runCell(workload, target)
      }
      catch (error) {
        res = { error: error.message }
      }
      list.push(res)
      const secs = ((performance.now() - t0) / 1000).toFixed(1)
      console.log(`  ${workload.padEnd(7)} rep ${rep + 1}/${reps} ${target.padEnd(9)} ${secs}s  ${brief(workload, res)}`)
    }
  }
}
const loadAfter = os.loadavg()
const elapsed = (Date.now() - startedAt.getTime()) / 1000

function brief(w, r) {
  if (r.error) return `ERROR ${r.error}`
  switch (w) {
    case 'latency': return `p50 ${r.p50.toFixed(0)} µs, cpu ${fmt(r.cpuPerMsg, 1)} µs/msg`
    case 'small':
    case 'large': return `${Math.round(r.msgPerSec)} msg/s, cpu ${fmt(r.cpuPerMsg, 1)} µs/msg`
    case 'idle': return `${fmt(r.kibPerConn, 1)} KiB/conn`
    case 'slow': return `peak ${fmt(r.peakMiB, 0)} MiB, last/1s ${fmt(r.growth, 2)}, upstream pushed ${fmt(r.upstreamSentMiB, 0)} MiB${r.capped ? ' (capped, killed)' : ''}`
    case 'upload': return `peak ${fmt(r.peakMiB, 0)} MiB${r.capped ? ' (capped, killed)' : ''}, ${r.completed}/${r.clients} acknowledged, written in ${fmt(r.writtenS, 1)} s, last ack ${fmt(r.lastAckS, 1)} s, proxy CPU ${fmt(r.cpuS, 1)} s${Object.keys(r.failures ?? {}).length ? `; failures: ${Object.entries(r.failures).map(([k, v]) => `${v}× ${k}`).join('; ')}` : ''}`
  }
}

// ---------------------------------------------------------------- aggregate
function median(xs) {
  const v = xs.filter(x => Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return Number.NaN
  const m = v.length >> 1
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}
const med = (w, t, key) => median((raw[w]?.[t] ?? []).filter(r => !r.error).map(r => r[key]))
const spread = (w, t, key) => {
  const v = (raw[w]?.[t] ?? []).filter(r => !r.error).map(r => r[key]).filter(Number.isFinite)
  const m = median(v)
  if (v.length < 2 || !m) return ''
  return ` ±${Math.round(Math.max(...v.map(x => Math.abs(x - m))) / m * 100)}%`
}
function fmt(x, digits = 1) {
  if (!Number.isFinite(x)) return '—'
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}
const fmtK = x => Number.isFinite(x) ? `${fmt(x / 1000, 1)}k` : '—'
const ratio = (a, b) => Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : Number.NaN
const fmtRatio = x => Number.isFinite(x) ? `${fmt(x, 2)}×` : '—'

const summary = {}
for (const t of targets) {
  summary[t] = {
    latencyP50: med('latency', t, 'p50'),
    latencyP99: med('latency', t, 'p99'),
    latencyCpu: med('latency', t, 'cpuPerMsg'),
    smallRate: med('small', t, 'msgPerSec'),
    smallCpu: med('small', t, 'cpuPerMsg'),
    largeRate: med('large', t, 'msgPerSec'),
    largeCpu: med('large', t, 'cpuPerMsg'),
    idleKib: med('idle', t, 'kibPerConn'),
    slowPeak: med('slow', t, 'peakMiB'),
    slowGrowth: med('slow', t, 'growth'),
    slowPushed: med('slow', t, 'upstreamSentMiB'),
    slowCapped: (raw.slow?.[t] ?? []).some(r => r.capped),
    uploadPeak: med('upload', t, 'peakMiB'),
    uploadCapped: (raw.upload?.[t] ?? []).some(r => r.capped),
    // The fewest acknowledged uploads of any repetition (an errored cell counts as none).
    uploadCompleted: raw.upload?.[t] ? Math.min(...raw.upload[t].map(r => r.error ? 0 : r.completed)) : Number.NaN,
    uploadClients: PARAMS.upload.clients,
    uploadLastAck: med('upload', t, 'lastAckS'),
  }
}

const LABEL = {
  'direct': 'direct (no proxy, the limit)',
  'pipe': 'raw TCP pipe (httpxy 0.5)',
  'crossws04': 'crossws 0.4.17 proxy (0.4 adapter)',
  'ours-0.3': 'ours on crossws 0.3.5',
  'ours-0.4': 'ours on crossws 0.4.17',
  'pool-0.3': `ours on crossws 0.3.5, pool of ${POOL_SIZE} upstreams`,
  'limits-0.3': 'ours on crossws 0.3.5, every limit on',
  'observe-0.3': 'ours on crossws 0.3.5, metrics and access log on',
}
if (baseline) {
  const name = baseline.ref ? `baseline ${baseline.ref === baseline.commit.slice(0, baseline.ref.length) ? '' : `${baseline.ref} = `}${baseline.commit.slice(0, 7)}` : 'baseline module'
  LABEL['base-0.3'] = `${name} on crossws 0.3.5`
  LABEL['base-0.4'] = `${name} on crossws 0.4.17`
}
const has = w => workloads.includes(w)
const lines = []
const row = cells => lines.push(`| ${cells.join(' | ')} |`)

const cols = [['target', () => null]]
if (has('latency')) cols.push(['RTT p50 / p99 µs', (s, t) => `${fmt(s.latencyP50, 0)} / ${fmt(s.latencyP99, 0)}${spread('latency', t, 'p50')}`], ['CPU µs/msg (1 conn)', (s, t) => fmt(s.latencyCpu) + spread('latency', t, 'cpuPerMsg')])
if (has('small')) cols.push(['64 B msg/s', (s, t) => fmtK(s.smallRate) + spread('small', t, 'msgPerSec')], ['**CPU µs/64 B msg**', (s, t) => fmt(s.smallCpu) + spread('small', t, 'cpuPerMsg')])
if (has('large')) cols.push(['64 KiB msg/s (MiB/s)', (s, t) => `${fmt(s.largeRate, 0)} (${fmt(s.largeRate / 16, 0)})${spread('large', t, 'msgPerSec')}`], ['**CPU µs/64 KiB msg**', (s, t) => fmt(s.largeCpu) + spread('large', t, 'cpuPerMsg')])
if (has('idle')) cols.push(['**idle KiB/conn**', (s, t) => fmt(s.idleKib) + spread('idle', t, 'kibPerConn')])
if (has('slow')) cols.push([`**slow consumer peak RSS MiB** (last/1 s)`, (s, t) => Number.isFinite(s.slowPeak) ? `${s.slowCapped ? '≥' : ''}${fmt(s.slowPeak, 0)} (${fmt(s.slowGrowth, 2)})${spread('slow', t, 'peakMiB')}` : '—'], ['upstream pushed MiB', s => fmt(s.slowPushed, 0)])
if (has('upload')) cols.push([`**upload ${PARAMS.upload.clients}×${PARAMS.upload.frameBytes / MiB} MiB peak RSS MiB** (acknowledged, last ack s)`, (s, t) => Number.isFinite(s.uploadPeak) ? `${s.uploadCapped ? '≥' : ''}${fmt(s.uploadPeak, 0)} (${s.uploadCompleted}/${s.uploadClients}, ${fmt(s.uploadLastAck, 1)})${spread('upload', t, 'peakMiB')}` : '—'])

const date = startedAt.toISOString().slice(0, 16).replace('T', ' ')
lines.push(`Run ${date} UTC · Node ${process.version} · ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}) · ${reps} repetition(s)${quick ? ', quick mode' : ''}, medians (±: largest deviation from the median) · load average ${loadBefore[0].toFixed(2)} → ${loadAfter[0].toFixed(2)} · ${Math.round(elapsed)} s`)
lines.push('')
row(cols.map(c => c[0]))
row(cols.map(() => '---'))
for (const t of targets) row(cols.map((c, i) => i === 0 ? LABEL[t] : c[1](summary[t], t)))

// Ratios: medians of the same run.
const ratioTargets = targets.filter(t => t.startsWith('ours') || t.startsWith('base') || t.startsWith('pool') || t.startsWith('limits') || t.startsWith('observe') || t === 'crossws04')
const baseOf = t => t.startsWith('ours-') && targets.includes(t.replace('ours-', 'base-')) ? t.replace('ours-', 'base-') : undefined
const hasBase = targets.some(t => baseOf(t))
/** ours ÷ base of each repetition (each pair ran back to back). */
function pairedRatios(w, t, key) {
  const a = raw[w]?.[t] ?? []
  const b = raw[w]?.[baseOf(t)] ?? []
  return a.map((r, i) => r.error || b[i]?.error ? Number.NaN : ratio(r[key], b[i]?.[key])).filter(Number.isFinite)
}
/** "0.97–1.08×", '' with one repetition. */
function pairedRange(w, t, key) {
  const xs = pairedRatios(w, t, key)
  return xs.length < 2 ? '' : `${fmt(Math.min(...xs), 2)}–${fmt(Math.max(...xs), 2)}×`
}
const checks = []
if (ratioTargets.length) {
  const rcols = [['target', t => LABEL[t]]]
  const atLeast = (t, key) => (key === 'slowPeak' && summary[t].slowCapped) || (key === 'uploadPeak' && summary[t].uploadCapped) ? '≥' : ''
  const vs = (key, base) => t => t === base ? '—' : `${atLeast(t, key)}${fmtRatio(ratio(summary[t][key], summary[base]?.[key]))}`
  // Medians' ratio, then the per-repetition range (`key` in the summary, `rawKey` in each cell).
  const vsBase = (w, key, rawKey) => t => baseOf(t) ? `**${fmtRatio(ratio(summary[t][key], summary[baseOf(t)][key]))}**${pairedRange(w, t, rawKey) && ` (${pairedRange(w, t, rawKey)})`}` : '—'
  if (has('small')) rcols.push(['CPU/64 B vs crossws04', vs('smallCpu', 'crossws04')], ['CPU/64 B vs pipe', vs('smallCpu', 'pipe')])
  if (has('small') && hasBase) rcols.push(['**CPU/64 B ours ÷ base**', vsBase('small', 'smallCpu', 'cpuPerMsg')])
  if (has('large')) rcols.push(['CPU/64 KiB vs crossws04', vs('largeCpu', 'crossws04')], ['CPU/64 KiB vs pipe', vs('largeCpu', 'pipe')])
  if (has('large') && hasBase) rcols.push(['**CPU/64 KiB ours ÷ base**', vsBase('large', 'largeCpu', 'cpuPerMsg')])
  if (has('idle')) rcols.push(['idle/conn vs crossws04', vs('idleKib', 'crossws04')], ['idle/conn vs pipe', vs('idleKib', 'pipe')])
  if (has('slow')) rcols.push(['slow peak vs pipe', vs('slowPeak', 'pipe')])
  if (has('upload')) rcols.push(['upload peak vs pipe', vs('uploadPeak', 'pipe')])
  if (rcols.length > 1) {
    lines.push('', 'Ratios (medians of this run; lower is better):', '')
    row(rcols.map(c => c[0]))
    row(rcols.map(() => '---'))
    for (const t of ratioTargets) row(rcols.map(c => c[1](t)))
  }

  for (const t of targets.filter(t => t.startsWith('ours'))) {
    const s = summary[t]
    const base = summary.crossws04
    const pipe = summary.pipe
    const check = (name, value, ok) => checks.push({ target: t, name, value, ok })
    if (has('small') && base) check('CPU per 64 B message ≤ 0.5× crossws04', fmtRatio(ratio(s.smallCpu, base.smallCpu)), ratio(s.smallCpu, base.smallCpu) <= 0.5)
    if (has('large') && base) check('CPU per 64 KiB message ≤ 0.6× crossws04', fmtRatio(ratio(s.largeCpu, base.largeCpu)), ratio(s.largeCpu, base.largeCpu) <= 0.6)
    if (has('slow') && pipe) check('slow-consumer peak RSS ≤ 1.5× pipe, flat (last/1 s ≤ 1.10)', `${fmtRatio(ratio(s.slowPeak, pipe.slowPeak))} (${fmt(s.slowPeak, 0)} ÷ ${fmt(pipe.slowPeak, 0)} MiB), ${fmt(s.slowGrowth, 2)}`, ratio(s.slowPeak, pipe.slowPeak) <= 1.5 && s.slowGrowth <= 1.1)
    if (has('slow') && !pipe) notes.push(`slow: no ratio to the pipe for ${t} (add the pipe target).`)
    if (has('idle') && base) check('idle RSS per connection ≤ crossws04', fmtRatio(ratio(s.idleKib, base.idleKib)), ratio(s.idleKib, base.idleKib) <= 1)
    if (has('upload')) check(`upload (${PARAMS.upload.clients} × one ${PARAMS.upload.frameBytes / MiB} MiB frame): peak RSS < ${UPLOAD_RSS_LIMIT / MiB} MiB, every upload acknowledged`, `${s.uploadCapped ? '≥' : ''}${fmt(s.uploadPeak, 0)} MiB, ${s.uploadCompleted}/${s.uploadClients}`, s.uploadPeak < UPLOAD_RSS_LIMIT / MiB && s.uploadCompleted === s.uploadClients)
    const b = baseOf(t) && summary[baseOf(t)]
    for (const [w, key, what] of [['small', 'smallCpu', '64 B'], ['large', 'largeCpu', '64 KiB']]) {
      if (!has(w) || !b) continue
      const range = pairedRange(w, t, 'cpuPerMsg')
      const xs = pairedRatios(w, t, 'cpuPerMsg')
      // Judged on the medians; flagged when single repetitions fall on both sides of the limit.
      const straddles = xs.length > 1 && Math.min(...xs) <= CPU_VS_BASE_LIMIT && Math.max(...xs) > CPU_VS_BASE_LIMIT
      check(`CPU per ${what} message ≤ ${CPU_VS_BASE_LIMIT}× ${baseOf(t)}`, `${fmtRatio(ratio(s[key], b[key]))} (${fmt(s[key])} ÷ ${fmt(b[key])} µs${range && `; per repetition ${range}`})${straddles ? ' — within this run\'s noise, repeat with more --reps' : ''}`, ratio(s[key], b[key]) <= CPU_VS_BASE_LIMIT)
    }
  }
  if (has('small') && summary['pool-0.3'] && summary['ours-0.3']) {
    const r = ratio(summary['pool-0.3'].smallCpu, summary['ours-0.3'].smallCpu)
    checks.push({ target: 'pool-0.3', name: `CPU per 64 B message ≤ ${POOL_CPU_LIMIT}× ours-0.3 (one upstream)`, value: `${fmtRatio(r)} (${fmt(summary['pool-0.3'].smallCpu)} ÷ ${fmt(summary['ours-0.3'].smallCpu)} µs)`, ok: r <= POOL_CPU_LIMIT })
  }
  if (has('small') && summary['limits-0.3'] && summary['ours-0.3']) {
    const r = ratio(summary['limits-0.3'].smallCpu, summary['ours-0.3'].smallCpu)
    checks.push({ target: 'limits-0.3', name: `CPU per 64 B message ≤ ${LIMITS_CPU_LIMIT}× ours-0.3 (limits off)`, value: `${fmtRatio(r)} (${fmt(summary['limits-0.3'].smallCpu)} ÷ ${fmt(summary['ours-0.3'].smallCpu)} µs)`, ok: r <= LIMITS_CPU_LIMIT })
  }
  if (has('small') && summary['observe-0.3'] && summary['ours-0.3']) {
    const r = ratio(summary['observe-0.3'].smallCpu, summary['ours-0.3'].smallCpu)
    checks.push({ target: 'observe-0.3', name: `CPU per 64 B message ≤ ${OBSERVE_CPU_LIMIT}× ours-0.3 (metrics and access log off)`, value: `${fmtRatio(r)} (${fmt(summary['observe-0.3'].smallCpu)} ÷ ${fmt(summary['ours-0.3'].smallCpu)} µs)`, ok: r <= OBSERVE_CPU_LIMIT })
  }
  if (checks.length) {
    lines.push('')
    lines.push('Targets:')
    lines.push('')
    for (const c of checks) lines.push(`- ${c.ok ? 'met' : '**not met**'}: ${c.target}, ${c.name}: ${c.value}`)
  }
}
const errors = []
for (const w of workloads) {
  for (const t of targets) {
    for (const [i, r] of (raw[w]?.[t] ?? []).entries()) {
      if (r.error) errors.push(`${w}/${t}: ${r.error}`)
      else if (w === 'upload' && Object.keys(r.failures ?? {}).length) errors.push(`upload/${t} rep ${i + 1}: ${r.completed}/${r.clients} acknowledged; ${Object.entries(r.failures).map(([k, v]) => `${v}× ${k}`).join('; ')}${r.capped ? ' (killed at the RSS cap)' : ''}`)
    }
  }
}
if (notes.length || errors.length) {
  lines.push('')
  for (const n of notes) lines.push(`Note: ${n}`)
  for (const e of errors) lines.push(`Error: ${e}`)
}

const table = lines.join('\n')
console.log(`\n${table}\n`)

const explanation = `
Workloads (each cell: fresh upstream, proxy and load-generator processes on 127.0.0.1):
- latency: 1 connection, one 64-byte text message in flight, ${PARAMS.latency.durationMs} ms after ${PARAMS.latency.warmupMs} ms warm-up.
- 64 B: ${PARAMS.small.connections} connections × ${PARAMS.small.window} text messages in flight, ${PARAMS.small.durationMs} ms.
- 64 KiB: ${PARAMS.large.connections} connections × ${PARAMS.large.window} binary messages in flight, ${PARAMS.large.durationMs} ms.
- idle: RSS after ${PARAMS.idle.connections} connections (each proven by one echo) minus before, after gc(), per connection.
- slow consumer: the upstream pushes 64 KiB messages as fast as its socket drains; the client pauses
  its socket after the first message; the proxy's RSS (/proc VmRSS) is sampled every 100 ms for ${PARAMS.slow.sampleMs / 1000} s.
  "last/1 s" is the last sample over the sample at 1 s (1.00 = flat). Killed past ${SLOW_RSS_CAP / MiB} MiB.
- upload: ${PARAMS.upload.clients} clients each upload ONE binary frame of ${PARAMS.upload.frameBytes / MiB} MiB, written by hand on the TCP
  socket (masked with the frame's key) in ${PARAMS.upload.sliceBytes / 1024} KiB slices paced over ${PARAMS.upload.durationMs / 1000} s, within the socket's flow
  control; the upstream checks every byte and answers "ok <bytes>". Peak RSS: the largest of
  /proc VmRSS sampled every 100 ms, /proc VmHWM and getrusage() maxRSS of the proxy process
  (its peak since it started). Killed past ${SLOW_RSS_CAP / MiB} MiB ("≥"); uploads unanswered after ${PARAMS.upload.timeoutMs / 1000} s fail.
- CPU µs/msg: the proxy process's own user+system CPU (process.cpuUsage()) over the measured window
  divided by round trips (a round trip is one message relayed each way).${baseline
    ? `
- base-*: the baseline build (${baseline.ref ? `${baseline.ref} = ${baseline.commit}` : baseline.module}) on the same adapters, run in
  the same repetitions (each base-* right after its ours-*, every other repetition in reverse
  order). "ours ÷ base" divides the medians; in parentheses the range of the per-repetition ratios.`
    : ''}
`
if (!flag('no-write')) {
  mkdirSync(join(here, 'results'), { recursive: true })
  writeFileSync(join(here, 'results/latest.md'), `# nitro-ws-proxy benchmark\n\n${table}\n${explanation}`)
  writeFileSync(join(here, 'results/latest.json'), `${JSON.stringify({
    date: startedAt.toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    loadavg: { before: loadBefore, after: loadAfter },
    reps,
    quick,
    params: PARAMS,
    baseline: baseline && { ref: baseline.ref, commit: baseline.commit, subject: baseline.subject, module: baseline.module },
    summary,
    checks,
    notes,
    raw,
  }, null, 2)}\n`)
  console.log('wrote bench/results/latest.md and bench/results/latest.json')
}
