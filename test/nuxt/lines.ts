/**
 * Other Nuxt lines than the repo's own devDependency (test/fixtures/nuxt45: Nuxt 4.5 on Node 22,
 * test/fixtures/nuxt3: Nuxt 3 on Node 20). Each fixture has its own package-lock.json and
 * node_modules (installed by scripts/install-fixtures.mjs) and loads the module from the repo's
 * dist/ by relative path. Builds and servers run as child processes with the fixture's own
 * nuxi and Node (`.node-version`), on 127.0.0.1 and port 0, and are killed by pid (`nuxi dev`,
 * which forks warm-up children, by its process group: -pid).
 *
 * WS_PROXY_LINES_DEBUG=1 prints what each `nuxi dev` printed.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join, relative } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// @ts-expect-error plain .mjs script without types
import { ensureFixtures, fixtureNodeMajor } from '../../scripts/install-fixtures.mjs'
import { cleanup, startUpstream, type Upstream, wsConnect } from '../helpers'
import { sleep, waitFor, withTimeout } from '../helpers/wait'
import { fixtureDir, repoRoot } from '../nitro/harness'
import { describeProxyBehaviour, fixtureEnv, startFixtureUpstream } from '../nitro/suite'

export type FixtureName = 'nuxt45' | 'nuxt3' | 'nuxt5' | 'nitro3-app'

/** Fixtures built and served with the `nitro` CLI (Nitro 3) instead of nuxi. */
const NITRO_CLI_FIXTURES: ReadonlySet<FixtureName> = new Set(['nitro3-app'])
const cliOf = (name: FixtureName) => NITRO_CLI_FIXTURES.has(name) ? 'node_modules/nitro/dist/cli/index.mjs' : 'node_modules/nuxt/bin/nuxt.mjs'

const nodeBinaries = new Map<string, Promise<string>>()

/** The Node binary a fixture runs on: its `.node-version` major through `npx -y node@<major>`, else this Node. */
export function fixtureNode(name: FixtureName): Promise<string> {
  const major: string | undefined = fixtureNodeMajor(name)
  if (!major || process.versions.node.split('.')[0] === major) return Promise.resolve(process.execPath)
  let binary = nodeBinaries.get(major)
  if (!binary) {
    // The binary itself (not `npx node@22 …`): the process we spawn is then the server, killed by its pid.
    binary = promisify(execFile)('npx', ['-y', `node@${major}`, '-p', 'process.execPath'], { timeout: 60_000 })
      .then(({ stdout }) => stdout.trim())
    nodeBinaries.set(major, binary)
  }
  return binary
}

/**
 * The env of a child: this process's env without what vitest sets (`nuxi dev` would otherwise
 * run unforked in test mode), `NO_COLOR`, plus `env` (`undefined` removes a variable).
 */
export function childEnv(env: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const result: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', NUXT_TELEMETRY_DISABLED: '1' }
  for (const key of Object.keys(result)) {
    if (key === 'TEST' || key === 'NODE_ENV' || key === 'VITEST' || key.startsWith('VITEST_') || key.startsWith('__VITEST')) delete result[key]
  }
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) delete result[key]
    else result[key] = value
  }
  return result
}

/** Every file under `dir` (sorted, relative), skipping `skip` names at any depth. */
function listFiles(dir: string, skip: Set<string>, base = dir): string[] {
  const files: string[] = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (skip.has(entry.name)) continue
    const path = join(dir, entry.name)
    if (entry.isDirectory()) files.push(...listFiles(path, skip, base))
    else if (entry.isFile()) files.push(relative(base, path))
  }
  return files.sort()
}

const BUILD_STAMP = '.ws-proxy-build-stamp'

/** Hash of what a fixture's build depends on: its sources and lockfile, the repo's dist/, the Node version. */
function buildInputsHash(name: FixtureName, nodeVersion: string): string {
  const hash = createHash('sha256').update(`node ${nodeVersion}\n`)
  const dir = fixtureDir(name)
  for (const file of listFiles(dir, new Set(['node_modules', '.output', '.nuxt', '.data', '.nitro', '.cache']))) {
    hash.update(`fixture/${file}\n`).update(readFileSync(join(dir, file)))
  }
  const dist = join(repoRoot, 'dist')
  for (const file of listFiles(dist, new Set())) hash.update(`dist/${file}\n`).update(readFileSync(join(dist, file)))
  return hash.digest('hex')
}

/** What a child process printed and how it ended. */
export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  output: string
}

/** Run a child to its end (SIGKILL by pid after `timeout`). */
function runChild(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeout: number): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout!.on('data', (chunk) => { output += chunk })
    child.stderr!.on('data', (chunk) => { output += chunk })
    const timer = setTimeout(() => {
      output += `\n[killed after ${timeout} ms]`
      child.kill('SIGKILL')
    }, timeout)
    child.on('error', (error) => { output += String(error) })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, output })
    })
  })
}

export interface BuildInfo {
  /** `…/.output/server/index.mjs` */
  entry: string
  /** Whether this call built (false: a build with the same inputs was reused). */
  built: boolean
  ms: number
}

/**
 * Install the fixture if needed, then `nuxi build` it with its own nuxi and Node, unless
 * `.output` already holds a build of the same inputs (stamp of lockfile, fixture sources,
 * dist/ and Node version).
 */
export async function buildFixture(name: FixtureName): Promise<BuildInfo> {
  const started = Date.now()
  await ensureFixtures([name])
  const dir = fixtureDir(name)
  const node = await fixtureNode(name)
  const nodeVersion = (await promisify(execFile)(node, ['-v'])).stdout.trim()
  const entry = join(dir, '.output/server/index.mjs')
  const stampFile = join(dir, '.output', BUILD_STAMP)
  const before = buildInputsHash(name, nodeVersion)
  if (existsSync(entry) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === before) {
    return { entry, built: false, ms: Date.now() - started }
  }
  const result = await runChild(node, [join(dir, cliOf(name)), 'build'], dir, childEnv(), 180_000)
  if (result.code !== 0 || !existsSync(entry)) {
    throw new Error(`nuxi build of test/fixtures/${name} (${nodeVersion}) failed (exit ${result.code ?? result.signal}):\n${result.output}`)
  }
  // Stamp only when dist/ and the sources did not change during the build.
  if (buildInputsHash(name, nodeVersion) === before) writeFileSync(stampFile, before)
  return { entry, built: true, ms: Date.now() - started }
}

export interface FixtureServer {
  /** `http://127.0.0.1:<port>` */
  url: string
  child: ChildProcess
  output: () => string
  /** Resolves with the exit code/signal once the process is gone. */
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** Whether the process is still running. */
  alive: () => boolean
  /** SIGTERM, then SIGKILL after 5 s; waits for the exit (whole process group for `nuxi dev`). */
  stop: () => Promise<void>
}

const started = new Set<FixtureServer>()

/** Stop every server started by this file (afterAll). */
export async function stopAllServers(): Promise<void> {
  await Promise.all([...started].map(server => server.stop()))
}

async function startChild(
  command: string,
  args: string[],
  options: { cwd: string, env: NodeJS.ProcessEnv, ready: RegExp, timeout: number, group: boolean },
): Promise<FixtureServer> {
  // A process group for `nuxi dev` (it forks warm-up children): signals go to -pid.
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'], detached: options.group })
  let output = ''
  child.stdout!.on('data', (chunk) => { output += chunk })
  child.stderr!.on('data', (chunk) => { output += chunk })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  const alive = () => child.exitCode === null && child.signalCode === null
  const signal = (name: NodeJS.Signals) => {
    try {
      if (options.group) process.kill(-child.pid!, name)
      else child.kill(name)
    }
    catch {}
  }
  const server: FixtureServer = {
    url: '',
    child,
    output: () => output,
    exited,
    alive,
    stop: async () => {
      if (alive()) {
        signal('SIGTERM')
        const timer = setTimeout(() => signal('SIGKILL'), 5000)
        await exited
        clearTimeout(timer)
      }
      // Forked children of a group may outlive the leader.
      if (options.group) signal('SIGKILL')
      started.delete(server)
    },
  }
  started.add(server)
  try {
    server.url = await withTimeout(new Promise<string>((resolve, reject) => {
      const check = () => {
        const match = options.ready.exec(output)
        if (match) resolve(match[1]!.replace(/\/$/, ''))
      }
      child.stdout!.on('data', check)
      child.stderr!.on('data', check)
      child.once('exit', code => reject(new Error(`${args.join(' ')} exited (${code}) before it was ready`)))
    }), options.timeout, `start of ${args.join(' ')}`)
    return server
  }
  catch (error) {
    await server.stop()
    throw new Error(`${(error as Error).message}\n--- output ---\n${output}`)
  }
}

/** `node .output/server/index.mjs` of a built fixture (its Node), on 127.0.0.1 and port 0. */
export async function startBuiltFixture(name: FixtureName, entry: string, env: Record<string, string | undefined>): Promise<FixtureServer> {
  return startChild(await fixtureNode(name), [entry], {
    cwd: fixtureDir(name),
    env: childEnv({ PORT: '0', NITRO_PORT: '0', HOST: '127.0.0.1', NITRO_HOST: '127.0.0.1', ...env }),
    ready: /Listening on:? (http:\/\/127\.0\.0\.1:\d+)\/?\s/,
    timeout: 20_000,
    group: false,
  })
}

/**
 * `nuxi dev` of a fixture (its nuxi and Node, forked mode as users run it) on 127.0.0.1 and a
 * port the OS picks, with its own build dir. Resolves once the proxy route answers (426).
 */
export async function startDevFixture(name: FixtureName, env: Record<string, string | undefined>): Promise<FixtureServer> {
  await ensureFixtures([name])
  const dir = fixtureDir(name)
  const args = NITRO_CLI_FIXTURES.has(name)
    ? [join(dir, cliOf(name)), 'dev', '--host', '127.0.0.1', '--port', '0']
    : [join(dir, cliOf(name)), 'dev', '--host', '127.0.0.1', '--port', '0', '--no-clipboard', '--no-open']
  const server = await startChild(await fixtureNode(name), args, {
    cwd: dir,
    env: childEnv({ WS_PROXY_FIXTURE_BUILD_DIR: '.nuxt/dev-test', PORT: undefined, NITRO_PORT: undefined, HOST: undefined, NITRO_HOST: undefined, ...env }),
    ready: /(?:Local:|Listening on:?)\s+(http:\/\/127\.0\.0\.1:\d+)\/?/,
    timeout: 90_000,
    group: true,
  })
  // The listener is up before Nitro is built: wait until the proxied route answers.
  const deadline = Date.now() + 90_000
  let last = ''
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${server.url}/live/ready`, { signal: AbortSignal.timeout(5000) })
      last = String(response.status)
      if (response.status === 426) return server
    }
    catch (error) { last = String(error) }
    if (!server.alive()) break
    await new Promise(resolve => setTimeout(resolve, 250))
  }
  await server.stop()
  throw new Error(`nuxi dev of test/fixtures/${name} never answered 426 on /live/ready (last: ${last}):\n${server.output()}`)
}

/** Env pointing every fixture rule at `upstream` (and `/slow/**` at `slow`), session password included. */
export function lineEnv(upstream: Upstream, slow: Upstream): Record<string, string> {
  return { ...fixtureEnv(upstream, 'NUXT_'), NUXT_WS_PROXY_SLOW_TARGET: `${slow.url}/slow/**` }
}

/**
 * Open a raw TCP connection, send (part of) an upgrade request for `path`, and reset the
 * socket (RST) once `resetWhen()` resolves. Resolves what the server sent before the reset.
 */
export function resetUpgrade(appUrl: string, path: string, options: { partial?: boolean, resetWhen: () => Promise<void> }): Promise<string> {
  const { hostname, port, host } = new URL(appUrl)
  return withTimeout(new Promise<string>((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    let received = ''
    let connected = false
    socket.on('data', (chunk) => { received += chunk.toString('latin1') })
    socket.on('error', (error) => {
      if (!connected) reject(error)
    })
    socket.on('connect', () => {
      connected = true
      const lines = [
        `GET ${path} HTTP/1.1`,
        `Host: ${host}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
        'Sec-WebSocket-Version: 13',
        '',
        '',
      ]
      // Partial: the request line and some headers, never the blank line that ends them.
      socket.write(options.partial ? lines.slice(0, 3).join('\r\n') : lines.join('\r\n'))
      options.resetWhen().then(() => {
        const before = received
        socket.resetAndDestroy()
        resolve(before)
      }, reject)
    })
  }), 10_000, `reset of an upgrade on ${path}`)
}

export interface LineOptions {
  /** e.g. 'Nuxt 4.5 (Node 22)' */
  label: string
  /** Text of the fixture's page. */
  pageText: string
  /** Also test `nuxi dev`. */
  dev: boolean
}

/** The tests of one Nuxt line: production build (suite, page, shutdown), then `nuxi dev`. */
export function describeNuxtLine(name: FixtureName, options: LineOptions): void {
  afterAll(async () => {
    await stopAllServers()
    await cleanup()
  }, 30_000)

  describe(`${options.label}: nuxi build`, () => {
    let upstream: Upstream
    let slow: Upstream
    let build: BuildInfo
    let server: FixtureServer

    beforeAll(async () => {
      upstream = await startFixtureUpstream()
      slow = await startUpstream({ handshakeDelay: 1500 })
      build = await buildFixture(name)
      server = await startBuiltFixture(name, build.entry, lineEnv(upstream, slow))
    }, 300_000)

    afterAll(() => server?.stop(), 15_000)

    it('runs the build (own nuxi, own Node) and renders the page', async () => {
      console.log(`[${name}] build ${build.built ? 'ran' : 'reused'} in ${(build.ms / 1000).toFixed(1)} s`)
      const response = await fetch(`${server.url}/`)
      expect(response.status).toBe(200)
      expect(await response.text()).toContain(options.pageText)
    }, 10_000)

    describeProxyBehaviour(`${options.label} build`, () => ({ url: server.url, upstream }), { sessionCookie: 'nuxt-session' })

    it('serves the metrics endpoint (`metrics: true`) to loopback clients, relayed connections counted', async () => {
      const client = await wsConnect(`${server.url.replace(/^http/, 'ws')}/live/metrics`)
      client.send('counted')
      expect((await client.next()).text).toBe('counted')
      await client.close()
      const response = await fetch(`${server.url}/_ws-proxy/metrics`)
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toMatch(/^text\/plain/)
      const line = (await response.text()).split('\n').find(l => l.startsWith('nitro_ws_proxy_connections_total{') && l.includes('route="/live/**"'))
      expect(Number(line?.split(' ').pop())).toBeGreaterThanOrEqual(1)
    }, 10_000)

    it('auto-imports useWsProxy() in server/ (a route listing its proxied routes)', async () => {
      const client = await wsConnect(`${server.url.replace(/^http/, 'ws')}/live/use-ws-proxy`)
      await client.close()
      const response = await fetch(`${server.url}/api/ws-proxy-routes`)
      expect(response.status).toBe(200)
      expect(await response.json()).toContain('/live/**')
    }, 10_000)

    it('closes proxied connections with 1001 on SIGTERM and exits within 10 s', async () => {
      const other = await startBuiltFixture(name, build.entry, lineEnv(upstream, slow))
      const client = await wsConnect(`${other.url.replace(/^http/, 'ws')}/live/shutdown`)
      client.send('before shutdown')
      expect((await client.next()).text).toBe('before shutdown')
      const closes = upstream.closes.length
      const signalled = Date.now()
      other.child.kill('SIGTERM')
      expect(await withTimeout(client.closed, 5000, 'client close on SIGTERM')).toMatchObject({ code: 1001 })
      const exit = await withTimeout(other.exited, 10_000, 'server exit after SIGTERM')
      expect(Date.now() - signalled).toBeLessThan(10_000)
      expect(exit).toEqual({ code: 0, signal: null })
      await expect.poll(() => upstream.closes.length, { timeout: 3000 }).toBeGreaterThan(closes)
    }, 30_000)
  })

  if (!options.dev) return

  describe(`${options.label}: nuxi dev`, () => {
    let upstream: Upstream
    let slow: Upstream
    let server: FixtureServer

    beforeAll(async () => {
      upstream = await startFixtureUpstream()
      slow = await startUpstream({ handshakeDelay: 1500 })
      server = await startDevFixture(name, lineEnv(upstream, slow))
    }, 150_000)

    afterAll(async () => {
      // WS_PROXY_LINES_DEBUG=1: what the dev server printed.
      if (process.env.WS_PROXY_LINES_DEBUG && server) console.log(`--- ${options.label} nuxi dev output ---\n${server.output()}`)
      await server?.stop()
    }, 15_000)

    const ws = (path: string) => `${server.url.replace(/^http/, 'ws')}${path}`

    async function relays(path: string) {
      const client = await wsConnect(ws(path), { timeout: 5000 })
      client.send(`text via ${path}`)
      const text = await client.next()
      expect([text.isBinary, text.text]).toEqual([false, `text via ${path}`])
      const bytes = Buffer.from([0, 1, 2, 253, 254, 255])
      client.send(bytes)
      const binary = await client.next()
      expect(binary.isBinary).toBe(true)
      expect(Buffer.compare(binary.data, bytes)).toBe(0)
      await client.close()
    }

    it('relays text and binary frames through the dev server', async () => {
      const before = upstream.handshakes.length
      await relays('/live/dev?x=1')
      expect(upstream.handshakes.slice(before).map(h => h.url)).toEqual(['/echo/dev?x=1'])
    }, 15_000)

    describeProxyBehaviour(`${options.label} dev`, () => ({ url: server.url, upstream }), { sessionCookie: 'nuxt-session' })

    // Last: a dev server that does not survive takes the tests after it down with it.
    it('survives clients that reset mid-handshake, before their 101', async () => {
      const variants: Array<[string, string, Parameters<typeof resetUpgrade>[2], number]> = [
        // The request reached the proxy, which waits for the slow upstream (upstream-first: no 101 yet).
        ['after the proxy dialled the upstream', '/slow/reset', {
          resetWhen: () => waitFor(() => slow.handshakes.some(h => h.url === '/slow/reset'), { timeout: 5000, label: 'the dialled upstream handshake' }),
        }, 2000],
        ['right after sending the whole request', '/live/reset-now', { resetWhen: async () => {} }, 500],
        ['in the middle of the request headers', '/live/reset-partial', { partial: true, resetWhen: () => sleep(100) }, 500],
      ]
      for (const [when, path, reset, settle] of variants) {
        const label = `reset ${when} (${path})`
        const mark = server.output().length
        const beforeReset = await resetUpgrade(server.url, path, reset)
        expect(beforeReset, `${label}: answer received before the reset`).toBe('')
        await sleep(settle)
        // Nuxt's CLI restarts Nuxt (new listener, every connection dropped) on an unhandled
        // rejection instead of exiting: the dev server must print nothing of the kind.
        const printed = server.output().slice(mark)
        expect(printed, `${label}: dev server output`).not.toMatch(/unhandledRejection|uncaughtException|Restarting Nuxt|ECONNRESET|EPIPE|Local:/)
        expect(server.alive(), `${label}: dev server process alive`).toBe(true)
        await relays('/live/after-reset')
      }
      // The upstream dialled for the first reset client is closed again, not left open.
      await expect.poll(() => slow.connections, { timeout: 5000 }).toBe(0)
      await relays('/slow/after-reset')
    }, 40_000)
  })
}
