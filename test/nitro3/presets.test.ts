/**
 * Nitro 3 presets other than node-server (test/fixtures/nitro3-app built with the fixture's own
 * `nitro build` and `NITRO_PRESET`, each into its own build and output dirs under the OS temp
 * directory):
 *
 * - `node-cluster` (two workers): the shared proxy suite, and SIGTERM to the primary only closes
 *   proxied connections with 1001 and ends every process (Nitro 3's primary handles no signal;
 *   the module passes them on, see `forwardClusterSignalsNitro3` in src/nitro/module.ts).
 * - `deno-server`, run by real Deno 2 (from npm): the shared suite, through crossws 0.4's Deno
 *   adapter wrapped by `fixDenoAdapter` (subprotocol offers, client address), and SIGTERM.
 * - `deno-deploy`, run locally by real Deno 2 (test/nitro/deno-deploy-serve.mjs gives its
 *   `Deno.serve` an address): the shared suite and SIGTERM.
 * - `bun`, run by real Bun 1 (from npm): the shared suite and SIGTERM.
 * - Refused presets (src/nitro/presets.ts, `UNSUPPORTED_PRESETS_3`), the serverless `netlify`
 *   and `aws-lambda` included: the build stops with the module's message.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// @ts-expect-error plain .mjs script without types
import { ensureFixtures } from '../../scripts/install-fixtures.mjs'
import { checkPreset } from '../../src/nitro/presets'
import { cleanup, type Upstream, wsConnect } from '../helpers'
import { withTimeout } from '../helpers/wait'
import { fixtureDir, repoRoot } from '../nitro/harness'
import { describeProxyBehaviour, fixtureEnv, type SuiteOptions, startFixtureUpstream } from '../nitro/suite'
import { childEnv, fixtureNode } from '../nuxt/lines'

const dir = fixtureDir('nitro3-app')
const children = new Set<ChildProcess>()

let buildsRoot = ''

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL')
  await cleanup()
  if (buildsRoot) await rm(buildsRoot, { recursive: true, force: true })
}, 30_000)

interface Run { code: number | null, output: string }

function run(command: string, args: string[], options: { cwd: string, env: NodeJS.ProcessEnv, timeout: number }): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    let output = ''
    child.stdout!.on('data', (chunk) => { output += chunk })
    child.stderr!.on('data', (chunk) => { output += chunk })
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeout)
    child.on('close', (code) => {
      clearTimeout(timer)
      children.delete(child)
      resolve({ code, output })
    })
  })
}

/** `nitro build` of the fixture for `preset` into `.output-<preset>`; resolves the output dir. */
async function buildPreset(preset: string): Promise<{ outputDir: string } & Run> {
  await ensureFixtures(['nitro3-app'])
  // Outside the fixture: test/nitro3/nitro3.test.ts hashes the fixture's files for its own build
  // while this file's builds run in parallel.
  buildsRoot ||= await mkdtemp(join(tmpdir(), 'ws-proxy-nitro3-presets-'))
  const outputDir = join(buildsRoot, preset, 'output')
  await rm(join(buildsRoot, preset), { recursive: true, force: true })
  const result = await run(await fixtureNode('nitro3-app'), [join(dir, 'node_modules/nitro/dist/cli/index.mjs'), 'build'], {
    cwd: dir,
    env: childEnv({ NITRO_PRESET: preset, WS_PROXY_FIXTURE_BUILD_DIR: join(buildsRoot, preset, 'build'), WS_PROXY_FIXTURE_OUTPUT_DIR: outputDir }),
    timeout: 180_000,
  })
  return { outputDir, ...result }
}

interface Server {
  url: string
  child: ChildProcess
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  output: () => string
}

/** Start a built server; resolves once it printed `listeners` listening lines. */
async function startServer(command: string, args: string[], cwd: string, env: Record<string, string>, listeners = 1): Promise<Server> {
  const child = spawn(command, args, {
    cwd,
    env: childEnv({ PORT: '0', NITRO_PORT: '0', HOST: '127.0.0.1', NITRO_HOST: '127.0.0.1', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.add(child)
  let output = ''
  child.stdout!.on('data', (chunk) => { output += chunk })
  child.stderr!.on('data', (chunk) => { output += chunk })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child)
      resolve({ code, signal })
    })
  })
  const url = await withTimeout(new Promise<string>((resolve, reject) => {
    const check = () => {
      const lines = [...output.matchAll(/Listening on:?\s+(http:\/\/127\.0\.0\.1:\d+)/g)]
      const started = (output.match(/Worker #\d+ started/g) ?? []).length
      if (lines.length >= 1 && (listeners === 1 || started >= listeners)) resolve(lines[0]![1]!)
    }
    child.stdout!.on('data', check)
    child.stderr!.on('data', check)
    void exited.then(({ code, signal }) => reject(new Error(`${args.join(' ')} exited (${code ?? signal}) before listening:\n${output}`)))
  }), 30_000, `start of ${args.join(' ')}`)
  return { url, child, exited, output: () => output }
}

async function stop(server: Server | undefined): Promise<void> {
  if (!server || server.child.exitCode !== null || server.child.signalCode !== null) return
  server.child.kill('SIGTERM')
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 5000)
  await server.exited
  clearTimeout(timer)
}

/** Whether a process with `pid` still exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  }
  catch {
    return false
  }
}

describe('Nitro 3 node-cluster (two workers)', () => {
  let upstream: Upstream
  let build: Awaited<ReturnType<typeof buildPreset>>
  let server: Server

  const start = async () => startServer(await fixtureNode('nitro3-app'), [join(build.outputDir, 'server/index.mjs')], repoRoot, { ...fixtureEnv(upstream), NITRO_CLUSTER_WORKERS: '2' }, 2)

  beforeAll(async () => {
    upstream = await startFixtureUpstream()
    build = await buildPreset('node-cluster')
    if (build.code !== 0) throw new Error(`node-cluster build failed:\n${build.output}`)
    server = await start()
  }, 240_000)

  afterAll(() => stop(server), 15_000)

  it('passes shutdown signals from the primary on to the workers (the generated primary)', async () => {
    const primary = await readFile(join(build.outputDir, 'server/index.mjs'), 'utf8')
    expect(primary).toContain(`import { forwardShutdownSignals } from './nitro-ws-proxy-cluster.mjs'`)
    expect(primary).toContain('cluster.isPrimary')
    expect(existsSync(join(build.outputDir, 'server/nitro-ws-proxy-cluster.mjs'))).toBe(true)
  })

  describeProxyBehaviour('Nitro 3 node-cluster', () => ({ url: server.url, upstream }))

  it('closes proxied connections with 1001 on SIGTERM to the primary only, and every process exits', async () => {
    const other = await start()
    // The primary's children (Linux /proc; no procps needed).
    const workers = (await readFile(`/proc/${other.child.pid}/task/${other.child.pid}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean).map(Number)
    expect(workers).toHaveLength(2)
    const clients = await Promise.all([1, 2, 3, 4].map(i => wsConnect(`${other.url.replace(/^http/, 'ws')}/live/cluster-${i}`)))
    for (const client of clients) {
      client.send('before shutdown')
      expect((await client.next()).text).toBe('before shutdown')
    }
    const signalled = Date.now()
    other.child.kill('SIGTERM')
    for (const client of clients) {
      expect(await withTimeout(client.closed, 5000, 'client close on SIGTERM')).toMatchObject({ code: 1001 })
    }
    const exit = await withTimeout(other.exited, 10_000, 'primary exit after SIGTERM')
    expect(Date.now() - signalled).toBeLessThan(10_000)
    expect(exit.signal === null ? exit.code : exit.signal).toBe(0)
    await expect.poll(() => workers.filter(alive), { timeout: 3000 }).toEqual([])
  }, 30_000)
})

/** The real executable of an npm-distributed runtime (`npx -y <pkg>` installs it once). */
async function npxExecutable(pkg: string, args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)('npx', ['-y', pkg, ...args], { cwd: repoRoot, timeout: 240_000 })
  return stdout.trim().split('\n').at(-1)!.trim()
}

/** A preset whose build runs on another runtime: the shared suite, then SIGTERM. */
function describeRuntimePreset(preset: string, label: string, command: (outputDir: string) => Promise<{ command: string, args: string[], cwd: string }>, suite: SuiteOptions = {}): void {
  describe(`Nitro 3 ${preset} (${label})`, () => {
    let upstream: Upstream
    let server: Server

    beforeAll(async () => {
      upstream = await startFixtureUpstream()
      const build = await buildPreset(preset)
      if (build.code !== 0) throw new Error(`${preset} build failed:\n${build.output}`)
      const run = await command(build.outputDir)
      server = await startServer(run.command, run.args, run.cwd, fixtureEnv(upstream))
    }, 300_000)

    afterAll(() => stop(server), 15_000)

    describeProxyBehaviour(`Nitro 3 ${preset}`, () => ({ url: server.url, upstream }), suite)

    it('closes proxied connections with 1001 on SIGTERM and exits', async () => {
      const client = await wsConnect(`${server.url.replace(/^http/, 'ws')}/live/${preset}-shutdown`)
      client.send('before shutdown')
      expect((await client.next()).text).toBe('before shutdown')
      server.child.kill('SIGTERM')
      expect(await withTimeout(client.closed, 5000, 'client close on SIGTERM')).toMatchObject({ code: 1001 })
      const exit = await withTimeout(server.exited, 10_000, `${preset} exit after SIGTERM`).catch((error: Error) => {
        throw new Error(`${error.message}\n--- output ---\n${server.output()}`)
      })
      expect(exit.signal === null ? exit.code : exit.signal).toBe(0)
    }, 30_000)
  })
}

// What the output's `deno.json` start task runs, from the output dir.
describeRuntimePreset('deno-server', 'Deno 2', async outputDir => ({
  command: await npxExecutable('deno@2', ['eval', 'console.log(Deno.execPath())']),
  args: ['run', '-A', './server/index.mjs'],
  cwd: outputDir,
}))

// Nitro 3's deno-deploy entry calls `Deno.serve(handler)` with no address (Deno Deploy picks
// it): test/nitro/deno-deploy-serve.mjs wraps `Deno.serve` for 127.0.0.1 and a free port, then
// imports the entry, as on nitropack 2 (test/nitro/presets.test.ts). Locally Deno also delivers
// SIGTERM, which Deno Deploy's isolates do not get (they are stopped by the platform).
describeRuntimePreset('deno-deploy', 'Deno 2, run locally', async outputDir => ({
  command: await npxExecutable('deno@2', ['eval', 'console.log(Deno.execPath())']),
  args: ['run', '-A', join(repoRoot, 'test/nitro/deno-deploy-serve.mjs'), './server/index.ts'],
  cwd: outputDir,
}))

// Nitro 3's bun preset serves with Bun.serve (nitropack 2's runs Node's http on Bun), which
// resolves dot segments before the app and keeps no raw request target.
describeRuntimePreset('bun', 'Bun 1', async outputDir => ({
  command: await npxExecutable('bun@1', ['-e', 'console.log(process.execPath)']),
  args: ['run', join(outputDir, 'server/index.mjs')],
  cwd: repoRoot,
}), { resolvesDotSegments: true })

describe('Nitro 3 presets that cannot relay WebSockets', () => {
  afterAll(async () => {
    // Only written if a refused preset did build (the check not wired): netlify writes its
    // `_headers` and `_redirects` into the app's `dist/` whatever the output dir.
    await rm(join(dir, 'dist'), { recursive: true, force: true })
  })

  for (const preset of ['netlify-edge', 'cloudflare-module', 'cloudflare-pages', 'cloudflare-durable', 'netlify', 'aws-lambda']) {
    it(`refuses to build ${preset} with the reason`, async () => {
      const message = checkPreset(preset, { dev: false }, 3)!
      expect(message).toMatch(new RegExp(`^\\[nitro-ws-proxy\\] preset '${preset}' cannot run a WebSocket proxy: .+\\. Run the proxy on a server preset`))
      const build = await buildPreset(preset)
      expect(build.code).not.toBe(0)
      expect(build.output).toContain(message)
      await rm(build.outputDir, { recursive: true, force: true })
    }, 120_000)
  }

  it('refuses nothing in dev, and keeps the nitropack 2 table for nitropack 2', () => {
    expect(checkPreset('cloudflare-module', { dev: true }, 3)).toBeUndefined()
    expect(checkPreset('node-cluster', { dev: false }, 3)).toBeUndefined()
    expect(checkPreset('deno-server', { dev: false }, 3)).toBeUndefined()
    expect(checkPreset('vercel-edge', { dev: false }, 2)).toContain('nitropack\'s vercel-edge entry')
    expect(checkPreset('netlify-edge', { dev: false }, 3)).toContain('Nitro 3\'s netlify-edge entry')
    // Serverless functions: refused on both lines, except Nitro 3's vercel, whose entry has an
    // adapter for Vercel Functions' WebSockets (not tested: it needs Vercel's runtime).
    expect(checkPreset('netlify', { dev: false }, 3)).toContain('Nitro 3\'s netlify entry is a serverless function with no WebSocket adapter')
    expect(checkPreset('aws-lambda', { dev: false }, 2)).toContain('nitropack\'s aws-lambda entry is a serverless function')
    expect(checkPreset('vercel', { dev: false }, 2)).toContain('nitropack\'s vercel entry is a serverless function')
    expect(checkPreset('vercel', { dev: false }, 3)).toBeUndefined()
    expect(checkPreset('deno-deploy', { dev: false }, 3)).toBeUndefined()
  })
})
