/**
 * Presets without Node (test/fixtures/edge-app: one `wsProxy` rule, `/live/**`).
 *
 * - Refused presets: the real build (nitropack's createNitro → prepare → build, in a child
 *   process; once through the `nitropack build` CLI) stops with `checkPreset`'s message.
 * - `deno-deploy`: built, then run by real Deno (from npm) on 127.0.0.1 with a real `ws`
 *   upstream, and proxied end to end.
 *
 * Why each preset is refused is in src/nitro/presets.ts.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkPreset, UNSUPPORTED_PRESETS } from '../../src/nitro/presets'
import { cleanup, startUpstream, type Upstream, waitFor, withTimeout, wsConnect } from '../helpers'
import { fixtureDir, repoRoot } from './harness'

const rootDir = fixtureDir('edge-app')
const buildScript = fileURLToPath(new URL('./build-preset.mjs', import.meta.url))
const denoServe = fileURLToPath(new URL('./deno-deploy-serve.mjs', import.meta.url))
const nitroCli = fileURLToPath(new URL('../../node_modules/nitropack/dist/cli/index.mjs', import.meta.url))

/** The presets of the brief that must not build with a `wsProxy` rule. */
const REFUSED = ['vercel-edge', 'netlify-edge', 'cloudflare-module', 'cloudflare-durable', 'vercel', 'netlify', 'aws-lambda'] as const

const children = new Set<ChildProcess>()
const outDirs: string[] = []

afterAll(() => {
  for (const child of children) child.kill('SIGKILL')
  for (const dir of outDirs) rmSync(dir, { recursive: true, force: true })
  // Only written if a refused preset did build (the check not wired): netlify-edge writes its
  // manifest under the app's root whatever the output dir, the CLI's vercel-edge its output.
  for (const dir of ['.netlify', '.vercel', 'dist']) rmSync(join(rootDir, dir), { recursive: true, force: true })
})

interface Run { code: number | null, output: string }

/** Run `node <args>` from the repo root, killed by pid after `timeout` ms. */
function runNode(args: string[], timeout: number): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      cwd: repoRoot,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    children.add(child)
    let output = ''
    child.stdout!.on('data', (chunk) => { output += chunk })
    child.stderr!.on('data', (chunk) => { output += chunk })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout)
    child.on('close', (code) => {
      clearTimeout(timer)
      children.delete(child)
      resolve({ code, output })
    })
  })
}

/** Build the fixture with `preset` into a fresh temp dir (see build-preset.mjs). */
async function buildPreset(preset: string): Promise<Run & { outDir: string }> {
  const outDir = mkdtempSync(join(tmpdir(), `nitro-ws-proxy-${preset}-`))
  outDirs.push(outDir)
  return { ...await runNode([buildScript, rootDir, preset, outDir], 90_000), outDir }
}

describe('presets that cannot run a WebSocket proxy', () => {
  it('every refused preset has a message naming it, with the reason and what to use instead', () => {
    for (const preset of REFUSED) {
      expect(UNSUPPORTED_PRESETS[preset]).toBeDefined()
      const message = checkPreset(preset, { dev: false })!
      expect(message).toMatch(new RegExp(`^\\[nitro-ws-proxy\\] preset '${preset}' cannot run a WebSocket proxy: .+\\. .+$`))
    }
    // Supported or untouched: Deno Deploy, Node presets, dev (always Node).
    expect(checkPreset('deno-deploy', { dev: false })).toBeUndefined()
    expect(checkPreset('node-server', { dev: false })).toBeUndefined()
    expect(checkPreset('cloudflare-module', { dev: true })).toBeUndefined()
  })

  it.each(REFUSED)('%s: the build stops with the reason', async (preset) => {
    const run = await buildPreset(preset)
    expect(run.code, run.output).not.toBe(0)
    expect(run.output).toContain(checkPreset(preset, { dev: false })!)
    expect(run.output).not.toContain(`BUILT ${preset}`)
  }, 120_000)

  describe('through the nitropack CLI', () => {
    it('`nitropack build --preset vercel-edge` exits 1 with the message', async () => {
      const run = await runNode([nitroCli, 'build', '--dir', rootDir, '--preset', 'vercel-edge'], 90_000)
      expect(run.code, run.output).toBe(1)
      expect(run.output).toContain(checkPreset('vercel-edge', { dev: false })!)
    }, 120_000)
  })
})

describe('deno-deploy (run by Deno)', () => {
  let upstream: Upstream
  let url: string
  let deno: ChildProcess | undefined

  beforeAll(async () => {
    const built = await buildPreset('deno-deploy')
    expect(built.code, built.output).toBe(0)
    upstream = await startUpstream()
    const denoBin = execFileSync('npx', ['-y', 'deno@2', 'eval', 'console.log(Deno.execPath())'], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 }).trim()
    deno = spawn(denoBin, ['run', '-A', denoServe, join(built.outDir, 'output/server/index.ts')], {
      cwd: repoRoot,
      env: { ...process.env, NO_COLOR: '1', NITRO_WS_PROXY_LIVE_TARGET: `${upstream.url}/echo/**` },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    children.add(deno)
    let output = ''
    url = await withTimeout(new Promise<string>((resolve, reject) => {
      deno!.stdout!.on('data', (chunk) => {
        output += chunk
        const match = /Listening on http:\/\/(127\.0\.0\.1:\d+)/.exec(output)
        if (match) resolve(`ws://${match[1]}`)
      })
      deno!.stderr!.on('data', (chunk) => { output += chunk })
      deno!.once('exit', code => reject(new Error(`deno exited (${code}) before listening:\n${output}`)))
    }), 60_000, 'deno-deploy server start')
  }, 240_000)

  // The upstream lives for the whole block: `cleanup()` (clients, then the upstream) at the end.
  afterAll(async () => {
    deno?.kill('SIGKILL')
    await cleanup()
  })

  it('relays text and binary frames to the mapped target, with x-forwarded headers', async () => {
    const client = await wsConnect(`${url}/live/a/b?x=1`)
    client.send('hello')
    expect(await client.next()).toMatchObject({ text: 'hello', isBinary: false })
    client.send(Buffer.from([0, 1, 2, 255]))
    const binary = await client.next()
    expect(binary.isBinary).toBe(true)
    expect([...binary.data]).toEqual([0, 1, 2, 255])

    const handshake = upstream.handshakes.at(-1)!
    expect(handshake.url).toBe('/echo/a/b?x=1')
    expect(handshake.headers['x-forwarded-for']).toBe('127.0.0.1')
    expect(handshake.headers['x-forwarded-host']).toBe(new URL(url).host)
    await client.close(1000)
  })

  it('carries close codes both ways', async () => {
    const first = await wsConnect(`${url}/live/close`)
    first.send('hi')
    await first.next()
    const before = upstream.closes.length
    await first.close(4002, 'bye')
    await waitFor(() => upstream.closes.length > before, { timeout: 5000, label: 'upstream close' })
    expect(upstream.closes.at(-1)).toEqual({ code: 4002, reason: 'bye' })

    const second = await wsConnect(`${url}/live/close`)
    second.send('close:4001:from upstream')
    const closed = await withTimeout(second.closed, 5000, 'client close')
    expect(closed).toMatchObject({ code: 4001, reason: 'from upstream' })
  })
})
