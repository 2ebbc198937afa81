// Benchmark orchestrator: `npm run bench` (see README, "Benchmarks").
//   node bench/run.mjs [--quick] [--reps=N] [--workloads=latency,small,large,idle,slow,upload[,scale]]
//                      [--targets=direct,pipe,nginx,crossws04,ours-0.3,ours-0.4,nitro-0.3,nitro3,pool-0.3,limits-0.3,observe-0.3[,base-0.3,base-0.4]]
//                      [--baseline=<git ref> | --baseline-module=<path of an index.mjs>]
//                      [--scale-connections=<n>] [--no-write] [--bufferutil] [--rss-cap=<MiB>]
// Ours is ../dist/index.mjs (`npm run bench` builds first), or BENCH_OURS_MODULE=<absolute path>.
// The baseline (targets base-0.3 and base-0.4, the same relay from another build, beside ours in
// the same run): --baseline=<ref> checks <ref> out in a temporary git worktree under the OS temp
// directory (node_modules linked to this project's), builds it with its own `npm run build`,
// copies its dist/ aside and removes the worktree before the first cell; --baseline-module=<path>
// loads an existing build instead. Without --targets, base-0.3/base-0.4 run beside ours-0.3/ours-0.4.
// nginx: the system's `nginx` (Debian: `apt-get install nginx-light`), one process started per
// cell from a config generated in a temporary folder; skipped with a note when not installed.
// nitro-0.3: bench/nitro-app (this package's Nitro module from ../dist, one `wsProxy` rule) built
// once with the node-server preset into a cache folder under the OS temp directory (reused while
// dist/ and the app are unchanged) and started per cell as `node .output/server/index.mjs`.
// nitro3: bench/nitro3-app, the same rule in a Nitro 3 app built with
// the `nitro` package of test/fixtures/nitro3-app (test/nitro/build-preset.mjs with that package's builder), cached and started the
// same way; its CPU per 64 B message is compared with nitro-0.3's in the same run.
// The scale workload (N connections, one 64 B message a second each) is opt-in:
// `--workloads=scale`; N is 10,000 or what the open-file limit allows (--scale-connections=<n>).
// Each cell (workload × target × repetition) runs in fresh processes: the upstream
// (bench/upstream.mjs), the proxy (bench/proxy.mjs, nginx or the Nitro server; none for `direct`)
// and the load generator (bench/client.mjs; several processes when one cannot hold the scale
// workload's sockets). Repetitions interleave the targets so that noise from the shared machine
// spreads evenly. The proxy's CPU and RSS: from the process itself over IPC (process.cpuUsage(),
// memoryUsage()) for bench/proxy.mjs, from /proc/<pid>/stat and /proc/<pid>/status for nginx and
// the Nitro server; /proc is read for every target and compared. Prints markdown tables of medians
// and of ratios to nginx and to the raw pipe, and writes bench/results/latest.{md,json}.
import { fork, spawn as spawnProcess, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer as netServer } from 'node:net'
import os from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')
const MiB = 1024 * 1024
/** Builds a Nitro app with a preset, either line (shared with test/nitro/presets.test.ts). */
const BUILD_SCRIPT = join(root, 'test/nitro/build-preset.mjs')

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
const ALL_WORKLOADS = ['latency', 'small', 'large', 'idle', 'slow', 'upload', 'scale']
// scale runs only when asked for (--workloads=scale): about 20 s per cell.
const DEFAULT_WORKLOADS = ALL_WORKLOADS.filter(w => w !== 'scale')
// pool-0.3: ours on crossws 0.3 with a pool of 3 upstreams; limits-0.3: with every limit on;
// observe-0.3: with the metrics and the access log on (all three: small and latency workloads only).
// nginx: the reference reverse proxy (skipped when not installed); nitro-0.3: ours inside a
// built Nitro server (node-server preset, crossws 0.3.5), as users run it.
const ALL_TARGETS = ['direct', 'pipe', 'nginx', 'crossws04', 'ours-0.3', 'ours-0.4', 'nitro-0.3', 'nitro3', 'pool-0.3', 'limits-0.3', 'observe-0.3']
const LIMITS_CPU_LIMIT = 1.05 // limits-0.3 ÷ ours-0.3 CPU per 64 B message
const OBSERVE_CPU_LIMIT = 1.05 // observe-0.3 (metrics and access log on) ÷ ours-0.3 CPU per 64 B message
const POOL_SIZE = 3
const POOL_CPU_LIMIT = 1.1 // pool-0.3 ÷ ours-0.3 CPU per 64 B message
const BASE_TARGETS = ['base-0.3', 'base-0.4'] // run only with --baseline or --baseline-module
const NITRO3_CPU_LIMIT = 1.1 // nitro3 ÷ nitro-0.3 CPU per 64 B message (issue 13)
const workloads = String(flag('workloads') ?? DEFAULT_WORKLOADS.join(',')).split(',')
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
  // N connections opened in batches, then each sends one 64 B text message every intervalMs
  // (staggered over the interval) for steadyMs. `connections` is set below from the open-file limit.
  scale: { connections: 10_000, batch: 100, warmupConnections: 20, settleMs: 1000, size: 64, intervalMs: 1000, steadyMs: quick ? 4000 : 10_000, drainMs: 10_000 },
}
// `direct` has no proxy process: nothing to measure for idle, slow, upload and scale. nitro-0.3
// runs the same relay as ours-0.3: slow and upload (its memory bounds) are ours-0.3's.
const applies = (w, t) => !(t === 'direct' && (w === 'idle' || w === 'slow' || w === 'upload' || w === 'scale'))
  && !((t.startsWith('pool') || t.startsWith('limits') || t.startsWith('observe')) && w !== 'small' && w !== 'latency')
  && !((t === 'nitro-0.3' || t === 'nitro3') && (w === 'slow' || w === 'upload'))

// ---------------------------------------------------------------- nginx, nitro-0.3, the scale workload's size
// The open-file limit of the processes we start (the proxy holds 2 sockets per proxied connection).
const fdLimit = (() => {
  const [soft, hard] = spawnSync('sh', ['-c', 'ulimit -Sn; ulimit -Hn'], { encoding: 'utf8' }).stdout.trim().split('\n').map(x => x === 'unlimited' ? Infinity : Number(x))
  return { soft, hard }
})()
// nginx's file limit (as high as allowed: 2 sockets per proxied connection) and its connection
// slots: once fewer than 1/16 of the slots are free, nginx closes connections still waiting for
// their request (the next handshakes, reset), so the scale workload needs 16/15 × 2N slots. Slots
// beyond the file limit cost nginx a little preallocated memory (before the first connection), not a failure.
const NGINX_NOFILE = Math.min(Number.isFinite(fdLimit.hard) ? fdLimit.hard : 1e6, 2 * 10_000 + 100)
const NGINX_CONNECTIONS = Math.ceil((2 * 10_000 + 100) * 16 / 15)

let nginxInfo // { version } when installed
if (targets.includes('nginx')) {
  const r = spawnSync('nginx', ['-v'], { encoding: 'utf8' })
  if (r.error || r.status !== 0) {
    notes.push('nginx not installed: `apt-get install nginx-light` (Debian/Ubuntu; any nginx on PATH does); the nginx target was skipped, no ratios to nginx.')
    targets = targets.filter(t => t !== 'nginx')
  }
  else {
    nginxInfo = { version: /nginx\/(\S+)/.exec(r.stderr)?.[1] ?? 'unknown', workerConnections: NGINX_CONNECTIONS, workerRlimitNofile: NGINX_NOFILE }
  }
}

let nitroApp // { entry, dir, reused, seconds }
if (targets.includes('nitro-0.3') && workloads.some(w => applies(w, 'nitro-0.3'))) {
  try {
    nitroApp = prepareNitro()
    notes.push(`nitro-0.3: bench/nitro-app built with the node-server preset (nitropack ${nitroApp.nitropack}) from dist/ of ${nitroApp.distDate}${nitroApp.reused ? ', reused from the cache' : ` in ${fmt(nitroApp.seconds, 1)} s`} (${nitroApp.dir}).`)
    if (userModule || baseline) notes.push('nitro-0.3 runs the dist/ it was built from, not BENCH_OURS_MODULE or the baseline.')
  }
  catch (error) {
    notes.push(`nitro-0.3 skipped: ${error.message}`)
    targets = targets.filter(t => t !== 'nitro-0.3')
  }
}

let nitro3App // { entry, dir, reused, seconds, nitro }
if (targets.includes('nitro3') && workloads.some(w => applies(w, 'nitro3'))) {
  try {
    nitro3App = prepareNitro3()
    notes.push(`nitro3: bench/nitro3-app built with the node-server preset (nitro ${nitro3App.nitro}) from dist/${nitro3App.reused ? ', reused from the cache' : ` in ${fmt(nitro3App.seconds, 1)} s`} (${nitro3App.dir}).`)
  }
  catch (error) {
    notes.push(`nitro3 skipped: ${error.message}`)
    targets = targets.filter(t => t !== 'nitro3')
  }
}

/** Every file under `dir`, sorted. */
function listFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e => e.isDirectory() ? listFiles(join(dir, e.name)) : [join(dir, e.name)]).sort()
}

/**
 * Builds bench/nitro-app (node-server preset) into <OS temp>/nitro-ws-proxy-bench-nitro/<key>,
 * where the key hashes dist/, the app, the build script, nitropack's version and Node's: a run
 * with the same inputs reuses the build. Builds older than 7 days are removed.
 */
function prepareNitro() {
  const distDir = join(root, 'dist')
  const app = join(here, 'nitro-app')
  if (!existsSync(join(distDir, 'nitro.mjs'))) throw new Error('dist/nitro.mjs is missing (run `npm run build`).')
  const nitropack = JSON.parse(readFileSync(createRequire(join(root, 'package.json')).resolve('nitropack/package.json'), 'utf8')).version
  const hash = createHash('sha256')
  for (const file of [...listFiles(distDir), ...listFiles(app), BUILD_SCRIPT])
    hash.update(relative(root, file)).update('\0').update(readFileSync(file)).update('\0')
  hash.update(`${nitropack}\0${process.version}`)
  const key = hash.digest('hex').slice(0, 16)
  const cache = join(os.tmpdir(), 'nitro-ws-proxy-bench-nitro')
  const dir = join(cache, key)
  const entry = join(dir, 'output/server/index.mjs')
  const distDate = new Date(statSync(join(distDir, 'nitro.mjs')).mtimeMs).toISOString().slice(0, 16).replace('T', ' ')
  if (existsSync(entry)) return { entry, dir, reused: true, nitropack, distDate }
  mkdirSync(cache, { recursive: true })
  for (const old of readdirSync(cache)) {
    const path = join(cache, old)
    if (Date.now() - statSync(path).mtimeMs > 7 * 24 * 3600e3) rmSync(path, { recursive: true, force: true })
  }
  const tmp = `${dir}.tmp-${process.pid}`
  rmSync(tmp, { recursive: true, force: true })
  console.log(`[bench] nitro-0.3: building bench/nitro-app into ${dir} ...`)
  const t0 = performance.now()
  const r = spawnSync(process.execPath, [BUILD_SCRIPT, app, 'node-server', tmp], { cwd: root, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 * MiB })
  if (r.status !== 0 || !existsSync(join(tmp, 'output/server/index.mjs'))) {
    rmSync(tmp, { recursive: true, force: true })
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-5).join(' / ')
    throw new Error(`building bench/nitro-app failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`}): ${out}`)
  }
  try {
    renameSync(tmp, dir)
  }
  catch {
    rmSync(tmp, { recursive: true, force: true }) // another run built the same key meanwhile: use it
  }
  return { entry, dir, reused: false, seconds: (performance.now() - t0) / 1000, nitropack, distDate }
}

/**
 * Builds bench/nitro3-app with the `nitro` package of test/fixtures/nitro3-app (installed on
 * demand by scripts/install-fixtures.mjs) into the same cache as prepareNitro, keyed by dist/,
 * the app, the build script, nitro's version and Node's.
 */
function prepareNitro3() {
  const distDir = join(root, 'dist')
  const app = join(here, 'nitro3-app')
  const nitroDir = join(root, 'test/fixtures/nitro3-app/node_modules/nitro')
  if (!existsSync(join(distDir, 'nitro.mjs'))) throw new Error('dist/nitro.mjs is missing (run `npm run build`).')
  if (!existsSync(join(nitroDir, 'package.json'))) {
    const r = spawnSync(process.execPath, [join(root, 'scripts/install-fixtures.mjs'), 'nitro3-app'], { cwd: root, encoding: 'utf8', timeout: 300_000 })
    if (r.status !== 0) throw new Error(`installing test/fixtures/nitro3-app failed: ${`${r.stdout}${r.stderr}`.trim().split('\n').slice(-3).join(' / ')}`)
  }
  const nitro = JSON.parse(readFileSync(join(nitroDir, 'package.json'), 'utf8')).version
  const hash = createHash('sha256')
  for (const file of [...listFiles(distDir), ...listFiles(app), BUILD_SCRIPT])
    hash.update(relative(root, file)).update('\0').update(readFileSync(file)).update('\0')
  hash.update(`nitro ${nitro}\0${process.version}`)
  const dir = join(os.tmpdir(), 'nitro-ws-proxy-bench-nitro', `v3-${hash.digest('hex').slice(0, 16)}`)
  const entry = join(dir, 'output/server/index.mjs')
  if (existsSync(entry)) return { entry, dir, reused: true, nitro }
  mkdirSync(dirname(dir), { recursive: true })
  const tmp = `${dir}.tmp-${process.pid}`
  rmSync(tmp, { recursive: true, force: true })
  console.log(`[bench] nitro3: building bench/nitro3-app into ${dir} ...`)
  const t0 = performance.now()
  const r = spawnSync(process.execPath, [BUILD_SCRIPT, app, 'node-server', tmp, nitroDir], { cwd: root, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 * MiB })
  if (r.status !== 0 || !existsSync(join(tmp, 'output/server/index.mjs'))) {
    rmSync(tmp, { recursive: true, force: true })
    throw new Error(`building bench/nitro3-app failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`}): ${`${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-5).join(' / ')}`)
  }
  try {
    renameSync(tmp, dir)
  }
  catch {
    rmSync(tmp, { recursive: true, force: true })
  }
  return { entry, dir, reused: false, seconds: (performance.now() - t0) / 1000, nitro }
}

// scale: N = 10,000, or what the open-file limit allows the proxy process (2 sockets per connection,
// 200 files kept for everything else); a load generator holds at most (limit − 200) sockets.
let scaleSize
if (workloads.includes('scale')) {
  const allowed = Math.floor((fdLimit.soft - 200) / 2)
  const asked = flag('scale-connections')
  let n = Math.min(10_000, allowed)
  let why
  if (asked !== undefined) {
    const a = Number(asked)
    if (!Number.isInteger(a) || a < 1) throw new TypeError('[bench] --scale-connections must be a positive integer.')
    n = Math.min(a, allowed)
    why = a > allowed ? `--scale-connections=${a} lowered to what the open-file limit allows (${fdLimit.soft} files per process, \`ulimit -n\`)` : `--scale-connections=${a}`
  }
  else {
    why = allowed < 10_000
      ? `limited by the open-file limit: a process may open ${fdLimit.soft.toLocaleString('en-US')} files (\`ulimit -n\`, hard limit ${fdLimit.hard.toLocaleString('en-US')}) and the proxy holds 2 sockets per connection: floor((${fdLimit.soft} − 200) / 2)`
      : `the default (the open-file limit, ${fdLimit.soft.toLocaleString('en-US')}, allows ${allowed.toLocaleString('en-US')})`
  }
  const clients = Math.ceil(n / (fdLimit.soft - 200))
  PARAMS.scale.connections = n
  scaleSize = { connections: n, reason: why, clients, fdLimit }
  notes.push(`scale: N = ${n.toLocaleString('en-US')} connections, ${why}; ${clients} load-generator process${clients > 1 ? 'es' : ''}, one upstream process.`)
  const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number)
  if (high - low + 1 < n + 1000) notes.push(`scale: only ${high - low + 1} ephemeral ports (net.ipv4.ip_local_port_range) for ${n} connections to one address: opens may fail.`)
}

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
  return track(fork(join(here, file), argv, { cwd: root, execArgv, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] }))
}

/** Keeps the end of a child's stderr (`stderrTail`) and adds `exited`, a promise of its exit. */
function track(child) {
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

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100

/**
 * CPU and memory of any process from /proc, for targets that cannot answer over IPC (nginx) and
 * to check those that can: `cpu` { user, system } in µs from /proc/<pid>/stat utime and stime
 * (every thread; counted in clock ticks, 1/CLK_TCK s, 10 ms here), `rss` and `hwm` (VmRSS,
 * VmHWM) in bytes from /proc/<pid>/status. undefined when the process is gone.
 */
function readProc(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // After "pid (comm) ": fields[0] is field 3 (state), utime is field 14, stime field 15 (proc(5)).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kib = name => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN) * 1024
    return { cpu: { user: Number(fields[11]) * 1e6 / CLK_TCK, system: Number(fields[12]) * 1e6 / CLK_TCK }, rss: kib('VmRSS'), hwm: kib('VmHWM') }
  }
  catch {
    return undefined
  }
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

// ---------------------------------------------------------------- targets outside bench/proxy.mjs
/** A free TCP port on 127.0.0.1 (bound to port 0, then closed: retry on EADDRINUSE). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = netServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** True once process `pid` owns a socket listening on 127.0.0.1:`port` (/proc/<pid>/fd and /proc/net/tcp). */
function listensOn(pid, port) {
  let inodes
  try {
    inodes = new Set(readdirSync(`/proc/${pid}/fd`).map((fd) => {
      try {
        return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1]
      }
      catch {
        return undefined // closed meanwhile
      }
    }).filter(Boolean))
  }
  catch {
    return false // gone
  }
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`
  return readFileSync('/proc/net/tcp', 'utf8').split('\n').some((line) => {
    const f = line.trim().split(/\s+/)
    return f[1] === local && f[3] === '0A' && inodes.has(f[9]) // 0A: LISTEN
  })
}

/**
 * nginx as a WebSocket reverse proxy to the upstream, the way it is usually set up for one: HTTP/1.1
 * to the upstream, Upgrade/Connection mapped, no response buffering, x-forwarded-* as ours sends.
 * One process (`master_process off`, one worker), everything in `dir`, no access log.
 */
function nginxConfig({ dir, port, upstreamPort }) {
  return `# Generated by bench/run.mjs for one cell; removed after it.
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile ${NGINX_NOFILE};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events {
  worker_connections ${NGINX_CONNECTIONS};
}
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade {
    default upgrade;
    '' close;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://127.0.0.1:${upstreamPort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_buffering off;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
    }
  }
}
`
}

const liveNginx = new Set()
const nginxDirs = new Set()
process.on('exit', () => {
  for (const child of liveNginx) child.kill('SIGKILL') // no IPC channel: it would outlive us
  for (const dir of nginxDirs) rmSync(dir, { recursive: true, force: true })
})

/** The last distinct lines of nginx's error log (for a failed cell), '' if none. */
function lastLogLines(file) {
  try {
    const lines = readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map(l => l.replace(/^\S+ \S+ /, ''))
    return [...new Set(lines.slice(-50))].slice(-3).join(' / ')
  }
  catch {
    return ''
  }
}

/** Starts nginx (its own temporary folder and config) in front of the upstream; retries when the port was taken meanwhile. */
async function startNginx(upstreamPort, children) {
  const dir = mkdtempSync(join(os.tmpdir(), 'nitro-ws-proxy-bench-nginx-'))
  nginxDirs.add(dir)
  const cleanup = () => {
    rmSync(dir, { recursive: true, force: true })
    nginxDirs.delete(dir)
  }
  try {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort()
      const conf = join(dir, 'nginx.conf')
      writeFileSync(conf, nginxConfig({ dir, port, upstreamPort }))
      const child = track(spawnProcess('nginx', ['-p', `${dir}/`, '-c', conf, '-e', join(dir, 'error.log')], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] }))
      children.push(child)
      liveNginx.add(child)
      child.once('exit', () => liveNginx.delete(child))
      const deadline = performance.now() + 10_000
      while (child.exitCode === null && child.signalCode === null && !listensOn(child.pid, port) && performance.now() < deadline) await sleep(10)
      if (child.exitCode === null && child.signalCode === null && listensOn(child.pid, port))
        return { child, pid: child.pid, url: `ws://127.0.0.1:${port}/bench`, ipc: false, cpuSource: 'proc', cleanup, diagnose: () => lastLogLines(join(dir, 'error.log')) }
      child.kill('SIGKILL')
      await child.exited
      let log = child.stderrTail
      try {
        log += readFileSync(join(dir, 'error.log'), 'utf8')
      }
      catch {
        // no log written
      }
      if (/Address already in use/.test(log) && attempt < 5) continue
      throw new Error(`nginx did not start: ${firstError(log) || 'not listening after 10 s'}`)
    }
  }
  catch (error) {
    cleanup()
    throw error
  }
}

/** Starts the built Nitro server (bench/nitro-app) with the rule's target on the upstream; the port from its 'Listening on' line. */
async function startNitro(upstreamPort, children, app = nitroApp, label = 'nitro-0.3') {
  const child = track(fork(app.entry, [], {
    cwd: root,
    // probe.mjs answers run.mjs's `usage` (gc before memory readings) over the IPC channel.
    execArgv: ['--expose-gc', '--import', pathToFileURL(join(here, 'probe.mjs')).href],
    env: { ...process.env, PORT: '0', NITRO_PORT: '0', HOST: '127.0.0.1', NITRO_HOST: '127.0.0.1', NITRO_WS_PROXY_BENCH_TARGET: `ws://127.0.0.1:${upstreamPort}/**` },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  }))
  children.push(child)
  const port = await new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => done(new Error(`${label} start: timed out after 20000 ms`)), 20_000)
    const onData = (chunk) => {
      out = (out + chunk).slice(-4000)
      // nitropack 2: `Listening on http://…`; Nitro 3 (srvx): `➜ Listening on: http://…`.
      const m = /Listening on:? https?:\/\/[^\s/]+:(\d+)/.exec(out)
      if (m) done(null, Number(m[1]))
    }
    const onExit = code => done(new Error(`${label} start: process exited (${code}): ${firstError(child.stderrTail || out)}`))
    function done(err, value) {
      clearTimeout(timer)
      child.stdout.off('data', onData)
      child.stdout.resume() // keep draining what it prints
      child.off('exit', onExit)
      err ? reject(err) : resolve(value)
    }
    child.stdout.on('data', onData)
    child.once('exit', onExit)
  })
  return { child, pid: child.pid, url: `ws://127.0.0.1:${port}/bench/x`, ipc: true, cpuSource: 'proc' }
}

/** The process under test: { child, pid, url, ipc (answers `usage`), cpuSource ('ipc' | 'proc'), cleanup? }. */
async function startTarget(target, upstreamUrl, upstreamPort, children) {
  if (target === 'nginx') return startNginx(upstreamPort, children)
  if (target === 'nitro-0.3') return startNitro(upstreamPort, children)
  if (target === 'nitro3') return startNitro(upstreamPort, children, nitro3App, 'nitro3')
  const child = spawn('proxy.mjs', [target, upstreamUrl, ...(relayModule[target] ? [relayModule[target]] : [])], ['--expose-gc'])
  children.push(child)
  const { port } = await waitMessage(child, m => m?.type === 'ready', 15_000, `${target} start`)
  return { child, pid: child.pid, url: `ws://127.0.0.1:${port}/bench`, ipc: true, cpuSource: 'ipc' }
}

/**
 * A reading of the process under test. Both sources when it has them: `own` (its own answer over
 * IPC: process.cpuUsage(), memoryUsage(), after gc() when asked) and `proc` (/proc/<pid>/stat
 * utime+stime, /proc/<pid>/status VmRSS and VmHWM, read right after). `cpu`, `rss` and `maxRss`
 * come from the target's cpuSource.
 */
async function usage(proxy, gc) {
  const own = proxy.ipc ? await ask(proxy.child, 'usage', { gc }) : undefined
  const proc = readProc(proxy.pid)
  const at = performance.now()
  if (proxy.cpuSource === 'ipc') return { ...own, own: { cpu: own.cpu }, proc, at }
  if (!proc) throw new Error(`no /proc/${proxy.pid}: the process is gone`)
  return { own: own && { cpu: own.cpu }, heapUsed: own?.heapUsed, proc, at, cpu: proc.cpu, rss: proc.rss, maxRss: proc.hwm }
}

/** /proc CPU ÷ the process's own process.cpuUsage() over one window (NaN unless both were read). */
function cpuWindow(a, b) {
  return { ownUs: cpuMicros(a?.own, b?.own), procUs: cpuMicros(a?.proc, b?.proc) }
}

/** Upstream connection count: resolves with the time it reached `n`. */
async function waitUpstreamClients(upstream, n, timeoutMs) {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const { clients } = await ask(upstream, 'stats')
    if (clients >= n) return performance.now()
    if (performance.now() > deadline) throw new Error(`the upstream holds ${clients} of ${n} connections after ${timeoutMs / 1000} s`)
    await sleep(10)
  }
}

// ---------------------------------------------------------------- one cell
async function runCell(workload, target) {
  const children = []
  let sampler
  let proxy
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
    let url = upstreamUrl
    if (target !== 'direct') {
      proxy = await startTarget(target, upstreamUrl, upPort, children)
      url = proxy.url
    }
    // scale: N connections shared by as many load generators as the open-file limit needs; each
    // staggers its sends by its connections' place among all N.
    const clientParams = workload === 'scale'
      ? shares(PARAMS.scale.connections, scaleSize.clients).map(({ offset, count }) => ({ ...PARAMS.scale, connections: count, offset, total: PARAMS.scale.connections }))
      : [PARAMS[workload]]
    const clients = clientParams.map((params) => {
      const client = spawn('client.mjs', [workload, url, JSON.stringify(params)])
      children.push(client)
      return client
    })

    const marks = {}
    let samples
    let capped = false
    let upstreamStats
    let hwm
    // A mark is a barrier: the snapshot is taken once every load generator has reached it, then all are acknowledged.
    const arrived = new Map()
    const onMark = async (m, client) => {
      const waiting = arrived.get(m.name) ?? []
      arrived.set(m.name, waiting)
      waiting.push({ client, id: m.id })
      if (waiting.length < clients.length) return
      arrived.delete(m.name)
      try {
        // upload: RSS sampled in the background from the 'start' mark to the 'stop' mark.
        if (m.sample === 'start' && proxy) sampler = startSampler(proxy.child)
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
        // scale: the open phase ends when the upstream holds every connection (our relay may
        // accept the client before it dials).
        const reachedAt = m.waitUpstream ? await waitUpstreamClients(upstream, PARAMS.scale.connections, 60_000) : undefined
        if (proxy && !capped) marks[m.name] = { ...await usage(proxy, !!m.gc), reachedAt }
      }
      catch (error) {
        marks[m.name] = { error: error.message }
      }
      if (marks[m.name]) marks[m.name].ackAt = performance.now()
      for (const w of waiting) if (w.client.connected) w.client.send({ type: 'ack', id: w.id })
    }
    for (const client of clients) {
      client.on('message', (m) => {
        if (m?.type === 'mark') onMark(m, client)
      })
    }
    const budget = workload === 'slow' ? PARAMS.slow.sampleMs + 40_000 : workload === 'upload' ? PARAMS.upload.timeoutMs + 40_000 : workload === 'scale' ? 600_000 : 90_000
    // Every load generator's result; the first error ends the cell (the others may wait at a barrier).
    const results = await new Promise((resolve, reject) => {
      const out = []
      let left = clients.length
      clients.forEach((client, i) => waitMessage(client, m => m?.type === 'result' || m?.type === 'error', budget, `${workload} client`).then((m) => {
        if (m.type === 'error') return reject(new Error(`client: ${m.message}`))
        out[i] = m
        if (--left === 0) resolve(out)
      }, reject))
    })
    const result = workload === 'scale' ? mergeScale(results) : results[0]
    if (sampler) samples = sampler.samples
    return summarize(workload, result, marks, { samples, capped, upstreamStats, hwm })
  }
  catch (error) {
    const log = proxy?.diagnose?.()
    if (log) error.message += ` (nginx error log: ${log})`
    throw error
  }
  finally {
    await sampler?.stop()
    await killAll(children)
    proxy?.cleanup?.()
  }
}

/** `n` split into `k` contiguous ranges. */
function shares(n, k) {
  return Array.from({ length: k }, (_, i) => {
    const offset = Math.floor(i * n / k)
    return { offset, count: Math.floor((i + 1) * n / k) - offset }
  })
}

function mergeScale(results) {
  return {
    connections: results.reduce((a, r) => a + r.connections, 0),
    sent: results.reduce((a, r) => a + r.sent, 0),
    received: results.reduce((a, r) => a + r.received, 0),
    closedEarly: results.reduce((a, r) => a + r.closedEarly, 0),
    rtts: results.flatMap(r => r.rtts),
  }
}

function quantile(sorted, q) {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

function cpuMicros(a, b) {
  if (!a?.cpu || !b?.cpu) return Number.NaN
  return (b.cpu.user - a.cpu.user) + (b.cpu.system - a.cpu.system)
}

function summarize(workload, r, marks, extra) {
  switch (workload) {
    case 'latency':
      return { p50: r.p50, p99: r.p99, msgPerSec: Number.NaN, cpuPerMsg: cpuMicros(marks.start, marks.end) / r.messages, messages: r.messages, stats: marks.end?.stats, cpuWindows: [cpuWindow(marks.start, marks.end)] }
    case 'small':
    case 'large':
      return { msgPerSec: r.msgPerSec, cpuPerMsg: cpuMicros(marks.start, marks.end) / r.messages, messages: r.messages, elapsedMs: r.elapsedMs, stats: marks.end?.stats, cpuWindows: [cpuWindow(marks.start, marks.end)] }
    case 'scale': {
      const n = r.connections
      const rtts = Float64Array.from(r.rtts).sort()
      const steadyCpu = cpuMicros(marks['steady-start'], marks['steady-end'])
      const steadyMs = marks['steady-end']?.at - marks['steady-start']?.at
      for (const [name, mk] of Object.entries(marks)) if (mk?.error) throw new Error(`mark ${name}: ${mk.error}`)
      return {
        connections: n,
        openS: (marks.opened?.reachedAt - marks.before?.ackAt) / 1000,
        cpuPerOpen: cpuMicros(marks.before, marks.opened) / n,
        // Idle: after every connection opened and 1 s of quiet, after gc() where the process has one.
        kibPerConn: (marks.settled?.rss - marks.before?.rss) / 1024 / n,
        // After the steady phase (every connection has relayed messages).
        kibPerConnAfter: (marks.after?.rss - marks.before?.rss) / 1024 / n,
        rssBeforeMiB: marks.before?.rss / MiB,
        cpuPct: steadyCpu / (steadyMs * 1000) * 100,
        cpuPerMsg: steadyCpu / r.received,
        steadyS: steadyMs / 1000,
        p50: quantile(rtts, 0.5),
        p99: quantile(rtts, 0.99),
        sent: r.sent,
        messages: r.received,
        closedEarly: r.closedEarly,
        cpuWindows: [cpuWindow(marks.before, marks.opened), cpuWindow(marks['steady-start'], marks['steady-end'])],
      }
    }
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
    case 'scale': return `${r.connections} opened in ${fmt(r.openS, 1)} s, ${fmt(r.cpuPerOpen, 0)} µs CPU/open, ${fmt(r.kibPerConn, 1)} KiB/conn, steady ${fmt(r.cpuPct, 1)} % CPU, ${fmt(r.cpuPerMsg, 1)} µs/msg, RTT p50 ${fmt(r.p50, 0)} / p99 ${fmt(r.p99, 0)} µs${r.closedEarly ? `, ${r.closedEarly} closed early` : ''}`
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
    scaleConnections: med('scale', t, 'connections'),
    scaleOpenS: med('scale', t, 'openS'),
    scaleCpuPerOpen: med('scale', t, 'cpuPerOpen'),
    scaleKib: med('scale', t, 'kibPerConn'),
    scaleKibAfter: med('scale', t, 'kibPerConnAfter'),
    scaleCpuPct: med('scale', t, 'cpuPct'),
    scaleCpuPerMsg: med('scale', t, 'cpuPerMsg'),
    scaleP50: med('scale', t, 'p50'),
    scaleP99: med('scale', t, 'p99'),
  }
}

const LABEL = {
  'direct': 'direct (no proxy, the limit)',
  'pipe': 'raw TCP pipe (httpxy 0.5)',
  'nginx': `nginx ${nginxInfo?.version ?? ''} (one process, proxy_buffering off)`,
  'crossws04': 'crossws 0.4.17 proxy (0.4 adapter)',
  'ours-0.3': 'ours on crossws 0.3.5',
  'ours-0.4': 'ours on crossws 0.4.17',
  'nitro-0.3': 'ours in a built Nitro server (node-server, crossws 0.3.5)',
  'nitro3': `ours in a built Nitro 3 server (nitro ${nitro3App?.nitro ?? ''}, node-server, crossws 0.4)`,
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
const ran = (w, t) => (raw[w]?.[t] ?? []).length > 0
const fmtInt = x => Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: 0 }) : '—'

const cols = [['target', () => null]]
if (has('latency')) cols.push(['RTT p50 / p99 µs', (s, t) => `${fmt(s.latencyP50, 0)} / ${fmt(s.latencyP99, 0)}${spread('latency', t, 'p50')}`], ['CPU µs/msg (1 conn)', (s, t) => fmt(s.latencyCpu) + spread('latency', t, 'cpuPerMsg')])
if (has('small')) cols.push(['64 B msg/s', (s, t) => fmtK(s.smallRate) + spread('small', t, 'msgPerSec')], ['**CPU µs/64 B msg**', (s, t) => fmt(s.smallCpu) + spread('small', t, 'cpuPerMsg')])
if (has('large')) cols.push(['64 KiB msg/s (MiB/s)', (s, t) => `${fmt(s.largeRate, 0)} (${fmt(s.largeRate / 16, 0)})${spread('large', t, 'msgPerSec')}`], ['**CPU µs/64 KiB msg**', (s, t) => fmt(s.largeCpu) + spread('large', t, 'cpuPerMsg')])
if (has('idle')) cols.push([`**idle KiB/conn** (${fmtInt(PARAMS.idle.connections)})`, (s, t) => fmt(s.idleKib) + spread('idle', t, 'kibPerConn')])
if (has('slow')) cols.push([`**slow consumer peak RSS MiB** (last/1 s)`, (s, t) => Number.isFinite(s.slowPeak) ? `${s.slowCapped ? '≥' : ''}${fmt(s.slowPeak, 0)} (${fmt(s.slowGrowth, 2)})${spread('slow', t, 'peakMiB')}` : '—'], ['upstream pushed MiB', s => fmt(s.slowPushed, 0)])
if (has('upload')) cols.push([`**upload ${PARAMS.upload.clients}×${PARAMS.upload.frameBytes / MiB} MiB peak RSS MiB** (acknowledged, last ack s)`, (s, t) => Number.isFinite(s.uploadPeak) ? `${s.uploadCapped ? '≥' : ''}${fmt(s.uploadPeak, 0)} (${s.uploadCompleted}/${s.uploadClients}, ${fmt(s.uploadLastAck, 1)})${spread('upload', t, 'peakMiB')}` : '—'])

const date = startedAt.toISOString().slice(0, 16).replace('T', ' ')
lines.push(`Run ${date} UTC · Node ${process.version} · ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}) · ${reps} repetition(s)${quick ? ', quick mode' : ''}, medians (±: largest deviation from the median) · load average ${loadBefore[0].toFixed(2)} → ${loadAfter[0].toFixed(2)} · ${Math.round(elapsed)} s`)
const tableTargets = w => targets.filter(t => w.some(x => ran(x, t)))
if (cols.length > 1) {
  lines.push('')
  row(cols.map(c => c[0]))
  row(cols.map(() => '---'))
  for (const t of tableTargets(workloads.filter(w => w !== 'scale'))) row(cols.map((c, i) => i === 0 ? LABEL[t] : c[1](summary[t], t)))
}
if (has('scale')) {
  const p = PARAMS.scale
  lines.push('', `Scale: ${fmtInt(p.connections)} connections opened in batches of ${p.batch}, then each sends one ${p.size} B text message every ${p.intervalMs / 1000} s (staggered) for ${p.steadyMs / 1000} s:`, '')
  const scols = [
    ['target', t => LABEL[t]],
    ['open all s', t => fmt(summary[t].scaleOpenS, 2) + spread('scale', t, 'openS')],
    ['**CPU µs/open**', t => fmt(summary[t].scaleCpuPerOpen, 0) + spread('scale', t, 'cpuPerOpen')],
    ['**idle KiB/conn** (after the messages)', t => `${fmt(summary[t].scaleKib)} (${fmt(summary[t].scaleKibAfter)})${spread('scale', t, 'kibPerConn')}`],
    ['CPU % (steady)', t => fmt(summary[t].scaleCpuPct) + spread('scale', t, 'cpuPct')],
    ['**CPU µs/64 B msg**', t => fmt(summary[t].scaleCpuPerMsg) + spread('scale', t, 'cpuPerMsg')],
    ['RTT p50 / p99 µs', t => `${fmt(summary[t].scaleP50, 0)} / ${fmt(summary[t].scaleP99, 0)}${spread('scale', t, 'p50')}`],
  ]
  row(scols.map(c => c[0]))
  row(scols.map(() => '---'))
  for (const t of tableTargets(['scale'])) row(scols.map(c => c[1](t)))
}

// Ratios: medians of the same run. Every figure of the run: [workload, summary key, raw key, column].
const FIGURES = [
  ['latency', 'latencyP50', 'p50', 'RTT p50'],
  ['latency', 'latencyP99', 'p99', 'RTT p99'],
  ['latency', 'latencyCpu', 'cpuPerMsg', 'CPU/msg (1 conn)'],
  ['small', 'smallRate', 'msgPerSec', '64 B msg/s (higher is better)'],
  ['small', 'smallCpu', 'cpuPerMsg', '**CPU/64 B msg**'],
  ['large', 'largeRate', 'msgPerSec', '64 KiB msg/s (higher is better)'],
  ['large', 'largeCpu', 'cpuPerMsg', '**CPU/64 KiB msg**'],
  ['idle', 'idleKib', 'kibPerConn', `**idle KiB/conn** (${fmtInt(PARAMS.idle.connections)})`],
  ['slow', 'slowPeak', 'peakMiB', 'slow peak RSS'],
  ['upload', 'uploadPeak', 'peakMiB', 'upload peak RSS'],
  ['scale', 'scaleOpenS', 'openS', `scale (${fmtInt(PARAMS.scale.connections)}): open all`],
  ['scale', 'scaleCpuPerOpen', 'cpuPerOpen', `**scale (${fmtInt(PARAMS.scale.connections)}): CPU/open**`],
  ['scale', 'scaleKib', 'kibPerConn', `**scale (${fmtInt(PARAMS.scale.connections)}): idle KiB/conn**`],
  ['scale', 'scaleCpuPct', 'cpuPct', `scale (${fmtInt(PARAMS.scale.connections)}): CPU %`],
  ['scale', 'scaleCpuPerMsg', 'cpuPerMsg', `**scale (${fmtInt(PARAMS.scale.connections)}): CPU/64 B msg**`],
  ['scale', 'scaleP50', 'p50', `scale (${fmtInt(PARAMS.scale.connections)}): RTT p50`],
  ['scale', 'scaleP99', 'p99', `scale (${fmtInt(PARAMS.scale.connections)}): RTT p99`],
]
const baseOf = t => t.startsWith('ours-') && targets.includes(t.replace('ours-', 'base-')) ? t.replace('ours-', 'base-') : undefined
const hasBase = targets.some(t => baseOf(t))
/** t ÷ ref of each repetition (the targets of one repetition ran one after the other). */
function pairedRatios(w, t, ref, key) {
  const a = raw[w]?.[t] ?? []
  const b = raw[w]?.[ref] ?? []
  return a.map((r, i) => r.error || b[i]?.error ? Number.NaN : ratio(r[key], b[i]?.[key])).filter(Number.isFinite)
}
/** "0.97–1.08×", '' with one repetition. */
function pairedRange(w, t, ref, key) {
  const xs = pairedRatios(w, t, ref, key)
  return xs.length < 2 ? '' : `${fmt(Math.min(...xs), 2)}–${fmt(Math.max(...xs), 2)}×`
}
const atLeast = (t, key) => (key === 'slowPeak' && summary[t].slowCapped) || (key === 'uploadPeak' && summary[t].uploadCapped) ? '≥' : ''
const ratios = {} // ratios[ref][target][summary key], for the JSON
for (const ref of ['nginx', 'pipe', 'crossws04']) {
  if (!summary[ref]) continue
  const figures = FIGURES.filter(([w, key]) => has(w) && Number.isFinite(summary[ref][key]))
  const rows = targets.filter(t => t !== ref && t !== 'direct' && figures.some(([, key]) => Number.isFinite(ratio(summary[t][key], summary[ref][key]))))
  if (!figures.length || !rows.length) continue
  const shown = figures.filter(([, key]) => rows.some(t => Number.isFinite(ratio(summary[t][key], summary[ref][key]))))
  ratios[ref] = Object.fromEntries(rows.map(t => [t, Object.fromEntries(shown.map(([, key]) => [key, ratio(summary[t][key], summary[ref][key])]))]))
  // One row per figure, one column per target.
  lines.push('', `Ratios to ${LABEL[ref]}, medians of this run; lower is better unless marked:`, '')
  row([`÷ ${ref}`, ...rows])
  row(['---', ...rows.map(() => '---')])
  for (const [, key, , label] of shown) row([label, ...rows.map(t => `${atLeast(t, key)}${fmtRatio(ratio(summary[t][key], summary[ref][key]))}`)])
}
if (hasBase && (has('small') || has('large'))) {
  const bcols = [['small', 'smallCpu', '64 B'], ['large', 'largeCpu', '64 KiB']].filter(([w]) => has(w))
  lines.push('', 'Ours ÷ the baseline build (medians; in parentheses the range of the per-repetition ratios):', '')
  row(['target', ...bcols.map(([, , what]) => `**CPU/${what} ours ÷ base**`)])
  row(['---', ...bcols.map(() => '---')])
  for (const t of targets.filter(t => baseOf(t))) {
    row([LABEL[t], ...bcols.map(([w, key]) => {
      const range = pairedRange(w, t, baseOf(t), 'cpuPerMsg')
      return `**${fmtRatio(ratio(summary[t][key], summary[baseOf(t)][key]))}**${range && ` (${range})`}`
    })])
  }
}

const checks = []
const check = (target, name, value, ok) => checks.push({ target, name, value, ok })
for (const t of targets.filter(t => t.startsWith('ours'))) {
  const s = summary[t]
  const base = summary.crossws04
  const pipe = summary.pipe
  if (has('small') && base) check(t, 'CPU per 64 B message ≤ 0.5× crossws04', fmtRatio(ratio(s.smallCpu, base.smallCpu)), ratio(s.smallCpu, base.smallCpu) <= 0.5)
  if (has('large') && base) check(t, 'CPU per 64 KiB message ≤ 0.6× crossws04', fmtRatio(ratio(s.largeCpu, base.largeCpu)), ratio(s.largeCpu, base.largeCpu) <= 0.6)
  if (has('slow') && pipe) check(t, 'slow-consumer peak RSS ≤ 1.5× pipe, flat (last/1 s ≤ 1.10)', `${fmtRatio(ratio(s.slowPeak, pipe.slowPeak))} (${fmt(s.slowPeak, 0)} ÷ ${fmt(pipe.slowPeak, 0)} MiB), ${fmt(s.slowGrowth, 2)}`, ratio(s.slowPeak, pipe.slowPeak) <= 1.5 && s.slowGrowth <= 1.1)
  if (has('slow') && !pipe) notes.push(`slow: no ratio to the pipe for ${t} (add the pipe target).`)
  if (has('idle') && base) check(t, 'idle RSS per connection ≤ crossws04', fmtRatio(ratio(s.idleKib, base.idleKib)), ratio(s.idleKib, base.idleKib) <= 1)
  if (has('upload')) check(t, `upload (${PARAMS.upload.clients} × one ${PARAMS.upload.frameBytes / MiB} MiB frame): peak RSS < ${UPLOAD_RSS_LIMIT / MiB} MiB, every upload acknowledged`, `${s.uploadCapped ? '≥' : ''}${fmt(s.uploadPeak, 0)} MiB, ${s.uploadCompleted}/${s.uploadClients}`, s.uploadPeak < UPLOAD_RSS_LIMIT / MiB && s.uploadCompleted === s.uploadClients)
  const b = baseOf(t) && summary[baseOf(t)]
  for (const [w, key, what] of [['small', 'smallCpu', '64 B'], ['large', 'largeCpu', '64 KiB']]) {
    if (!has(w) || !b) continue
    check(t, `CPU per ${what} message ≤ ${CPU_VS_BASE_LIMIT}× ${baseOf(t)}`, ...judged(w, t, baseOf(t), key, 'cpuPerMsg', CPU_VS_BASE_LIMIT, 'µs'))
  }
}
/** [value text, ok] for t ÷ ref ≤ limit: judged on the medians; flagged when single repetitions fall on both sides of the limit. */
function judged(w, t, ref, key, rawKey, limit, unit) {
  const r = ratio(summary[t][key], summary[ref][key])
  const range = pairedRange(w, t, ref, rawKey)
  const xs = pairedRatios(w, t, ref, rawKey)
  const straddles = xs.length > 1 && Math.min(...xs) <= limit && Math.max(...xs) > limit
  return [`${fmtRatio(r)} (${fmt(summary[t][key])} ÷ ${fmt(summary[ref][key])} ${unit}${range && `; per repetition ${range}`})${straddles ? ' — within this run\'s noise, repeat with more --reps' : ''}`, Number.isFinite(r) ? r <= limit : undefined]
}
for (const [t, ref, limit] of [['pool-0.3', 'ours-0.3', POOL_CPU_LIMIT], ['limits-0.3', 'ours-0.3', LIMITS_CPU_LIMIT], ['observe-0.3', 'ours-0.3', OBSERVE_CPU_LIMIT]]) {
  if (!has('small') || !summary[t] || !summary[ref]) continue
  const what = { 'pool-0.3': '(one upstream)', 'limits-0.3': '(limits off)', 'observe-0.3': '(metrics and access log off)' }[t]
  const r = ratio(summary[t].smallCpu, summary[ref].smallCpu)
  check(t, `CPU per 64 B message ≤ ${limit}× ${ref} ${what}`, `${fmtRatio(r)} (${fmt(summary[t].smallCpu)} ÷ ${fmt(summary[ref].smallCpu)} µs)`, r <= limit)
}
if (has('small') && summary.nitro3 && summary['nitro-0.3']) {
  check('nitro3', `CPU per 64 B message ≤ ${NITRO3_CPU_LIMIT}× nitro-0.3`, ...judged('small', 'nitro3', 'nitro-0.3', 'smallCpu', 'cpuPerMsg', NITRO3_CPU_LIMIT, 'µs'))
}
// The performance issue's goals, against nginx in the same run: ours as a library and inside Nitro.
const nScale = fmtInt(PARAMS.scale.connections)
const NGINX_GOALS = [
  ['scale', 'scaleCpuPerOpen', 'cpuPerOpen', 2, 'CPU per connection opened', 'µs'],
  ['small', 'smallCpu', 'cpuPerMsg', 1, 'CPU per 64 B message, busy connections', 'µs'],
  ['scale', 'scaleCpuPerMsg', 'cpuPerMsg', 1.3, `CPU per 64 B message, ${nScale} mostly idle connections`, 'µs'],
  ['idle', 'idleKib', 'kibPerConn', 1.2, `RSS per idle connection at ${fmtInt(PARAMS.idle.connections)}`, 'KiB'],
  ['scale', 'scaleKib', 'kibPerConn', 1.2, `RSS per idle connection at ${nScale}`, 'KiB'],
]
for (const t of ['ours-0.3', 'nitro-0.3'].filter(t => summary[t])) {
  const goals = NGINX_GOALS.filter(([w]) => has(w) && ran(w, t))
  if (!goals.length) continue
  if (!summary.nginx) {
    notes.push(`${t}: the goals against nginx were not checked (nginx did not run).`)
    continue
  }
  for (const [w, key, rawKey, limit, name, unit] of goals) check(t, `${name} ≤ ${limit}× nginx`, ...judged(w, t, 'nginx', key, rawKey, limit, unit))
}
if (checks.length) {
  lines.push('')
  lines.push('Targets:')
  lines.push('')
  for (const c of checks) lines.push(`- ${c.ok === undefined ? 'not measured' : c.ok ? 'met' : '**not met**'}: ${c.target}, ${c.name}: ${c.value}`)
}

// /proc CPU against the process's own process.cpuUsage(), over the same windows, where both were read.
const agreement = {}
for (const t of targets) {
  const xs = workloads.flatMap(w => (raw[w]?.[t] ?? []).flatMap(r => r.cpuWindows ?? []))
    .filter(x => x.ownUs >= 100_000 && Number.isFinite(x.procUs)).map(x => x.procUs / x.ownUs)
  if (xs.length) agreement[t] = { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), windows: xs.length }
}
if (Object.keys(agreement).length) {
  notes.push(`/proc/<pid>/stat utime+stime ÷ the process's own process.cpuUsage() over the same windows (those of ≥ 0.1 s CPU; /proc counts ${1000 / CLK_TCK} ms ticks): ${Object.entries(agreement).map(([t, a]) => `${t} ${fmt(a.median, 3)} (${fmt(a.min, 3)}–${fmt(a.max, 3)}, ${a.windows} windows)`).join(', ')}.`)
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
- scale: ${fmtInt(PARAMS.scale.connections)} connections${scaleSize ? ` (${scaleSize.reason})` : ''}, opened in batches of ${PARAMS.scale.batch} after ${PARAMS.scale.warmupConnections} warm-up
  connections; "open all" runs from the first dial to the moment the upstream holds every
  connection, and CPU/open is the proxy's CPU over that phase ÷ N (both legs' handshakes). Idle
  KiB/conn: RSS ${PARAMS.scale.settleMs / 1000} s after the last open minus RSS before the first, after gc() where the process has
  one (not nginx), ÷ N; in parentheses the same after the message phase. Then each connection
  sends one ${PARAMS.scale.size} B text message every ${PARAMS.scale.intervalMs / 1000} s for ${PARAMS.scale.steadyMs / 1000} s, staggered evenly over the second
  (connection i at i/N s): CPU % is the proxy's CPU over that phase ÷ its wall time, CPU µs/64 B
  msg the same CPU ÷ round trips, RTT the client's send-to-echo times of every message.
- CPU µs/msg: the proxy process's user+system CPU over the measured window divided by round trips
  (a round trip is one message relayed each way): bench/proxy.mjs's own process.cpuUsage(); for
  nginx and nitro-0.3 (processes the bench did not write) /proc/<pid>/stat utime+stime, counted in
  ${1000 / CLK_TCK} ms ticks. /proc is read for every target and compared (a note above). Memory: the process's
  own memoryUsage().rss for bench/proxy.mjs, /proc/<pid>/status VmRSS for nginx and nitro-0.3.
- nginx: ${nginxInfo ? `nginx ${nginxInfo.version}` : 'not installed'}, started per cell from a generated config in a temporary folder: one
  process (\`daemon off; master_process off; worker_processes 1;\`), \`worker_connections ${NGINX_CONNECTIONS}\`, HTTP/1.1
  to the upstream with Upgrade/Connection mapped, \`proxy_buffering off\`, x-forwarded-* set, no access log.
- nitro-0.3: bench/nitro-app (the Nitro module from dist/, one rule \`'/bench/**': { wsProxy }\`) built
  with the node-server preset, started per cell as \`node .output/server/index.mjs\` (with --expose-gc
  and bench/probe.mjs preloaded, which answers the bench's gc requests); the client dials /bench/x.${baseline
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
    fdLimit,
    nginx: nginxInfo,
    nitro: nitroApp && { dir: nitroApp.dir, reused: nitroApp.reused, nitropack: nitroApp.nitropack, distDate: nitroApp.distDate },
    scale: scaleSize,
    summary,
    ratios,
    cpuSourceAgreement: agreement,
    checks,
    notes,
    raw,
  }, null, 2)}\n`)
  console.log('wrote bench/results/latest.md and bench/results/latest.json')
}
