/**
 * Real runtimes for the end-to-end preset tests: the fixture app test/fixtures/runtime-app built
 * with one Nitro preset per output dir (cached by a content hash), and started with that
 * preset's own runtime as a child process on 127.0.0.1 and an ephemeral port, killed by pid.
 *
 * | preset         | started as                                                         |
 * | -------------- | ------------------------------------------------------------------ |
 * | `node-server`  | `node <out>/server/index.mjs` (`process.execPath`, Node 20)         |
 * | `node-cluster` | same, `NITRO_CLUSTER_WORKERS=2`: a primary and two workers          |
 * | `bun`          | `bun run <out>/server/index.mjs` (the binary of `npx -y bun@1`)     |
 * | `deno-server`  | the `start` task of the generated `<out>/deno.json` (`deno run …`)  |
 *
 * Bun and Deno are run from their real executables (resolved once through `npx`), never through
 * the `npx` wrapper, so the pid a test signals is the runtime's own.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { withTimeout } from '../helpers/wait'

export const PRESETS = ['node-server', 'node-cluster', 'bun', 'deno-server'] as const
export type Preset = typeof PRESETS[number]

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url))
export const fixtureRoot = fileURLToPath(new URL('../fixtures/runtime-app/', import.meta.url))

/** Workers of the node-cluster runs (the default is one per CPU). */
export const CLUSTER_WORKERS = 2

/** Bumped when the build recipe below changes, so that cached builds are not reused. */
const BUILD_RECIPE = 'runtime-app build v1: prepare, copyPublicAssets, build; output .output-<preset>, buildDir .nitro/<preset>'
const STAMP_FILE = '.build-stamp'

const execFileAsync = promisify(execFile)

export const outputDir = (preset: Preset) => join(fixtureRoot, `.output-${preset}`)
const buildDir = (preset: Preset) => join(fixtureRoot, '.nitro', preset)

async function filesUnder(dir: string, skip: (rel: string) => boolean = () => false): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true })
  return entries
    .filter(e => e.isFile())
    .map(e => join(e.parentPath, e.name))
    .filter(file => !skip(relative(dir, file)))
    .sort()
}

/**
 * Hash of everything a build depends on: the recipe, the preset, package-lock.json, every file
 * of dist/ and the fixture's sources (its build outputs and build dirs left out).
 */
export async function buildInputsHash(preset: Preset): Promise<string> {
  const hash = createHash('sha256')
  hash.update(`${BUILD_RECIPE}\0${preset}\0`)
  const add = async (file: string) => {
    hash.update(`${relative(repoRoot, file)}\0`)
    hash.update(await readFile(file))
    hash.update('\0')
  }
  await add(join(repoRoot, 'package-lock.json'))
  if (!existsSync(join(repoRoot, 'dist/nitro.mjs'))) throw new Error('dist/nitro.mjs is missing: build the package first (npm run build)')
  for (const file of await filesUnder(join(repoRoot, 'dist'))) await add(file)
  const isOutput = (rel: string) => /^\.output-|^\.nitro(?:\/|$)/.test(rel)
  for (const file of await filesUnder(fixtureRoot, isOutput)) await add(file)
  return hash.digest('hex')
}

export interface BuildResult {
  preset: Preset
  outputDir: string
  /** `false` when the stamp matched and the previous build was reused. */
  built: boolean
  ms: number
}

/**
 * Build the fixture with `preset` into `<fixture>/.output-<preset>` (buildDir
 * `<fixture>/.nitro/<preset>`), programmatically like `nitropack build`. Skipped when the stamp
 * file in that output holds the hash of the current inputs ({@link buildInputsHash}).
 */
export async function buildPreset(preset: Preset): Promise<BuildResult> {
  const started = Date.now()
  const dir = outputDir(preset)
  const stampPath = join(dir, STAMP_FILE)
  const before = await buildInputsHash(preset)
  if (existsSync(join(dir, 'server/index.mjs')) && existsSync(stampPath) && (await readFile(stampPath, 'utf8')).trim() === before) {
    return { preset, outputDir: dir, built: false, ms: Date.now() - started }
  }
  const { build, copyPublicAssets, createNitro, prepare } = await import('nitropack/core')
  const nitro = await createNitro({
    rootDir: fixtureRoot,
    dev: false,
    preset,
    buildDir: buildDir(preset),
    output: { dir },
    logLevel: 1,
  })
  try {
    await prepare(nitro) // empties the output dir, stamp included
    await copyPublicAssets(nitro)
    await build(nitro)
  }
  finally {
    await nitro.close()
  }
  // Only stamp what was built from inputs that did not change meanwhile (dist/ being rebuilt).
  if (await buildInputsHash(preset) === before) await writeFile(stampPath, `${before}\n`)
  return { preset, outputDir: dir, built: true, ms: Date.now() - started }
}

const executables = new Map<string, Promise<string>>()

/** The real executable of an npm-distributed runtime (`npx -y <pkg>` installs it once). */
function resolveExecutable(pkg: string, args: string[]): Promise<string> {
  let found = executables.get(pkg)
  if (!found) {
    found = execFileAsync('npx', ['-y', pkg, ...args], { cwd: repoRoot, timeout: 240_000, env: { ...process.env, NO_COLOR: '1' } })
      .then(({ stdout }) => {
        const path = stdout.trim().split('\n').at(-1)!.trim()
        if (!existsSync(path)) throw new Error(`npx -y ${pkg} printed no executable path: ${JSON.stringify(stdout)}`)
        return path
      })
    executables.set(pkg, found)
  }
  return found
}

export const bunExecutable = () => resolveExecutable('bun@1', ['-e', 'console.log(process.execPath)'])
export const denoExecutable = () => resolveExecutable('deno@2', ['eval', 'console.log(Deno.execPath())'])

export interface RuntimeCommand {
  command: string
  args: string[]
  cwd: string
  /** How the command reads in a report (runtime executables named, not their cache paths). */
  display: string
}

/** The command that runs `preset`'s build with its real runtime. */
export async function runtimeCommand(preset: Preset): Promise<RuntimeCommand> {
  const dir = outputDir(preset)
  const entry = join(dir, 'server/index.mjs')
  switch (preset) {
    case 'node-server':
    case 'node-cluster':
      return { command: process.execPath, args: [entry], cwd: repoRoot, display: `node ${relative(repoRoot, entry)}` }
    case 'bun':
      return { command: await bunExecutable(), args: ['run', entry], cwd: repoRoot, display: `bun run ${relative(repoRoot, entry)}` }
    case 'deno-server': {
      // What `deno task --config <out>/deno.json start` runs, started directly (no task runner
      // between the test and the pid it signals), from the output dir like the task.
      const denoJson = JSON.parse(await readFile(join(dir, 'deno.json'), 'utf8')) as { tasks?: { start?: string } }
      const task = denoJson.tasks?.start
      if (!task) throw new Error(`no tasks.start in ${join(dir, 'deno.json')}`)
      const [program, ...args] = task.trim().split(/\s+/)
      if (program !== 'deno') throw new Error(`unexpected deno.json start task: ${task}`)
      return { command: await denoExecutable(), args, cwd: dir, display: `(cd ${relative(repoRoot, dir)} && deno ${args.join(' ')})` }
    }
  }
}

/** Env values: a string sets the variable, `undefined` removes it from the inherited env. */
export type ChildEnv = Record<string, string | undefined>

export interface RuntimeServer {
  preset: Preset
  /** `http://127.0.0.1:<port>` */
  url: string
  /** `ws://127.0.0.1:<port>` */
  wsUrl: string
  port: number
  /** The runtime process (the cluster's primary). */
  pid: number
  /** node-cluster: the worker pids (children of the primary); otherwise empty. */
  workerPids: number[]
  child: ChildProcess
  command: RuntimeCommand
  /** The lines that said the server listens. */
  listeningLines: string[]
  /** Everything the process printed (stdout and stderr). */
  output: () => string
  /** Resolves when the process exited, with `Date.now()` of the exit. */
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null, at: number }>
  readonly alive: boolean
  /** SIGKILL the process and its workers by pid (idempotent, bounded). */
  kill: () => Promise<void>
}

/**
 * One "listening" line of each runtime, with its port:
 * node-server and each node-cluster worker: `Listening on http://127.0.0.1:PORT`;
 * bun: `Listening on http://127.0.0.1:PORT/...`; deno-server: `Listening 127.0.0.1:PORT`.
 */
const LISTENING = /^Listening (?:on )?(?:https?:\/\/)?(?:127\.0\.0\.1|localhost|\[::1?\]|0\.0\.0\.0):(\d+)\b.*$/gm

function childEnv(env: ChildEnv): NodeJS.ProcessEnv {
  const result: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1', DENO_NO_PROMPT: '1' }
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) delete result[name]
    else result[name] = value
  }
  return result
}

async function childPids(pid: number): Promise<number[]> {
  try {
    const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')
    return text.trim().split(/\s+/).filter(Boolean).map(Number)
  }
  catch {
    return []
  }
}

function killPid(pid: number) {
  try {
    process.kill(pid, 'SIGKILL')
  }
  catch {}
}

/** SIGKILL a cluster worker, only while its command line is still that of our build (no pid reuse). */
function killWorker(pid: number, entry: string) {
  try {
    if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(entry)) killPid(pid)
  }
  catch {}
}

/** Whether a process with this pid runs (a zombie, exited and not yet reaped, does not). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  }
  catch {
    return false
  }
  try {
    // `pid (comm) S …`: the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  }
  catch {
    return false
  }
}

/** Every server started, so a file's `afterAll` can kill what a failed test left running. */
const started = new Set<RuntimeServer>()

// Last resort when the test process ends without its afterAll (a killed worker): no runtime
// outlives it. Synchronous, by pid, workers included.
process.once('exit', () => {
  for (const server of started) {
    killPid(server.pid)
    for (const worker of server.workerPids) killWorker(worker, outputDir(server.preset))
  }
})

/** Kill every server this module started and not yet killed (by pid; workers too). */
export async function killAllServers(): Promise<void> {
  await Promise.all([...started].map(server => server.kill()))
}

/**
 * Start `preset`'s build with its runtime and `env`, on 127.0.0.1 and port 0. Resolves once it
 * printed its listening line (every worker's, on node-cluster).
 */
export async function startRuntime(preset: Preset, env: ChildEnv, timeout = 30_000): Promise<RuntimeServer> {
  const command = await runtimeCommand(preset)
  const child = spawn(command.command, command.args, {
    cwd: command.cwd,
    env: childEnv({
      PORT: '0',
      NITRO_PORT: '0',
      HOST: '127.0.0.1',
      NITRO_HOST: '127.0.0.1',
      ...(preset === 'node-cluster' ? { NITRO_CLUSTER_WORKERS: String(CLUSTER_WORKERS) } : {}),
      ...env,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const pid = child.pid!
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => { output += chunk })
  child.stderr!.on('data', (chunk: Buffer) => { output += chunk })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null, at: number }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() }))
  })
  let exitedNow = false
  void exited.then(() => { exitedNow = true })

  const workerPids: number[] = []
  let killed: Promise<void> | undefined
  const server: RuntimeServer = {
    preset,
    url: '',
    wsUrl: '',
    port: 0,
    pid,
    workerPids,
    child,
    command,
    listeningLines: [],
    output: () => output,
    exited,
    get alive() { return !exitedNow },
    kill: () => {
      killed ??= (async () => {
        // Workers seen at start and any the primary forked since.
        const workers = new Set([...workerPids, ...(await childPids(pid))])
        killPid(pid)
        for (const worker of workers) killWorker(worker, outputDir(preset))
        await Promise.race([exited, new Promise(resolve => setTimeout(resolve, 5000))])
        for (const worker of workers) {
          const deadline = Date.now() + 5000
          while (isAlive(worker) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
        }
        started.delete(server)
      })()
      return killed
    },
  }
  started.add(server)

  const listeners = preset === 'node-cluster' ? CLUSTER_WORKERS : 1
  try {
    const found = await withTimeout(new Promise<RegExpExecArray[]>((resolve, reject) => {
      const check = () => {
        const matches = [...output.matchAll(LISTENING)]
        if (matches.length >= listeners) resolve(matches)
      }
      child.stdout!.on('data', check)
      child.stderr!.on('data', check)
      void exited.then(({ code, signal }) => reject(new Error(`${command.display} exited (${code ?? signal}) before it listened:\n${output}`)))
    }), timeout, `${preset}: listening line(s) of ${command.display}`).catch((error: Error) => {
      throw new Error(`${error.message}; output so far:\n${output}`)
    })
    const lines = found.map(match => match[0])
    const ports = new Set(found.map(match => Number(match[1])))
    if (ports.size !== 1) throw new Error(`${preset}: listening on several ports: ${lines.join(' | ')}`)
    const [port] = ports
    Object.assign(server, { url: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}`, port, listeningLines: lines })
    if (preset === 'node-cluster') workerPids.push(...await childPids(pid))
    return server
  }
  catch (error) {
    await server.kill()
    throw error
  }
}

/**
 * Send a WebSocket upgrade request to `url` and resolve the response head (status line and
 * headers, duplicates kept), then drop the connection. Unlike `rawUpgrade` it does not wait for
 * the end of a refusal's body: Deno.serve keeps the connection alive after a 401.
 */
export function upgradeHead(url: string, headers: Record<string, string> = {}, timeout = 5000): Promise<{ statusLine: string, status: number, headers: Array<[string, string]> }> {
  const target = new URL(url)
  const lines = [
    `GET ${target.pathname}${target.search} HTTP/1.1`,
    `Host: ${target.host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ]
  const socket = connect(Number(target.port), target.hostname)
  socket.on('error', () => {})
  return withTimeout(new Promise<{ statusLine: string, status: number, headers: Array<[string, string]> }>((resolve, reject) => {
    let received = ''
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1')
      const end = received.indexOf('\r\n\r\n')
      if (end === -1) return
      const [statusLine = '', ...rest] = received.slice(0, end).split('\r\n')
      resolve({
        statusLine,
        status: Number(statusLine.split(' ')[1]),
        headers: rest.map((line): [string, string] => [line.slice(0, line.indexOf(':')).trim().toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
      })
    })
    socket.once('close', () => reject(new Error(`connection closed before a response head: ${JSON.stringify(received)}`)))
    socket.once('connect', () => socket.write(`${lines.join('\r\n')}\r\n\r\n`))
  }), timeout, `response head to the upgrade of ${url}`).finally(() => socket.destroy())
}
