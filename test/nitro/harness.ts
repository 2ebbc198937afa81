/**
 * Real fixture apps for the module tests: programmatic Nitro builds, and servers started as
 * child processes on 127.0.0.1 and an ephemeral port, killed by pid.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { withTimeout } from '../helpers/wait'

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url))
export const fixtureDir = (name: string) => fileURLToPath(new URL(`../fixtures/${name}/`, import.meta.url))
const nitroCli = fileURLToPath(new URL('../../node_modules/nitropack/dist/cli/index.mjs', import.meta.url))
const devServerScript = fileURLToPath(new URL('./dev-server.mjs', import.meta.url))

export interface ChildServer {
  url: string
  child: ChildProcess
  /** Everything the process printed. */
  output: () => string
  stop: () => Promise<void>
}

/** Build `rootDir` with the node-server preset into `<rootDir>/.output` (programmatic, in-process, like `nitropack build`). */
export async function buildNodeServer(rootDir: string): Promise<void> {
  const { build, copyPublicAssets, createNitro, prepare, prerender } = await import('nitropack/core')
  const nitro = await createNitro({ rootDir, dev: false, preset: 'node-server', buildDir: `${rootDir}.nitro/prod`, logLevel: 1 })
  try {
    // The steps of `nitropack build`, prerendering included.
    await prepare(nitro)
    await copyPublicAssets(nitro)
    await prerender(nitro)
    await build(nitro)
  }
  finally {
    await nitro.close()
  }
}

/** Env values: a string sets the variable, `undefined` removes it from the inherited env. */
export type ChildEnv = Record<string, string | undefined>

/** Start `node <rootDir>/.output/server/index.mjs` with `env` on 127.0.0.1 and a free port. */
export function startNodeServer(rootDir: string, env: ChildEnv): Promise<ChildServer> {
  return startBuiltServer(`${rootDir}.output/server/index.mjs`, env)
}

/** Start a built server entry (`…/server/index.mjs`, Nitro or Nuxt) on 127.0.0.1 and a free port. */
export function startBuiltServer(entry: string, env: ChildEnv): Promise<ChildServer> {
  return startChild(
    [entry],
    { PORT: '0', NITRO_PORT: '0', HOST: '127.0.0.1', NITRO_HOST: '127.0.0.1', ...env },
    /Listening on (http:\/\/\S+?)\/?\s/,
    20_000,
  )
}

/** What {@link runBuiltServer} saw: the exit code (`null` if it was listening and got killed). */
export interface ServerRun {
  code: number | null
  listened: boolean
  output: string
}

/**
 * Start a built server entry and wait until it exits by itself (bounded by `timeout`). A server
 * that starts listening instead is killed: `listened: true`, `code: null`.
 */
export function runBuiltServer(entry: string, env: ChildEnv, timeout = 15_000): Promise<ServerRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [entry], {
      cwd: repoRoot,
      env: childEnv({ PORT: '0', NITRO_PORT: '0', HOST: '127.0.0.1', NITRO_HOST: '127.0.0.1', ...env }),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    let listened = false
    const onData = (chunk: Buffer) => {
      output += chunk
      if (!listened && /Listening on /.test(output)) {
        listened = true
        child.kill('SIGKILL')
      }
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code: listened ? null : code, listened, output })
    })
  })
}

function childEnv(env: ChildEnv): NodeJS.ProcessEnv {
  const result: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' }
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) delete result[name]
    else result[name] = value
  }
  return result
}

/** Start `nitropack dev` on `rootDir` (through test/nitro/dev-server.mjs) with `env`. */
export function startNitroDev(rootDir: string, env: ChildEnv): Promise<ChildServer> {
  return startChild([devServerScript, rootDir, `${rootDir}.nitro/dev`], env, /READY (\S+)/, 90_000)
}

/** Run `nitropack build` (the CLI) on `rootDir`; resolves its exit code and output. */
export function runNitroBuildCli(rootDir: string): Promise<{ code: number | null, output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [nitroCli, 'build', '--dir', rootDir], {
      cwd: repoRoot,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout!.on('data', (chunk) => { output += chunk })
    child.stderr!.on('data', (chunk) => { output += chunk })
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })
}

async function startChild(args: string[], env: ChildEnv, ready: RegExp, timeout: number): Promise<ChildServer> {
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    await Promise.race([exited, new Promise(resolve => setTimeout(resolve, 5000))])
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  }
  try {
    const url = await withTimeout(new Promise<string>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        output += chunk
        const match = ready.exec(output)
        if (match) resolve(match[1]!.replace(/\/$/, ''))
      }
      child.stdout!.on('data', onData)
      child.stderr!.on('data', (chunk: Buffer) => { output += chunk })
      child.once('exit', code => reject(new Error(`${args[0]} exited (${code}) before it was ready:\n${output}`)))
    }), timeout, `start of ${args.join(' ')}`)
    return { url, child, output: () => output, stop }
  }
  catch (error) {
    await stop()
    throw error
  }
}
