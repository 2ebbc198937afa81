#!/usr/bin/env node
/**
 * Install the fixture apps that carry their own dependencies (test/fixtures/<name>/ with a
 * package-lock.json: a Nuxt line other than the repo's own devDependency), with `npm ci`.
 *
 * A fixture is installed only when its node_modules is missing or was installed from another
 * package-lock.json (or with another Node major): after a successful `npm ci` a stamp with the
 * lockfile's hash is written to node_modules/.ws-proxy-fixture-stamp. `npm ci` removes
 * node_modules first, so a failed install leaves no stamp and is retried next time.
 *
 * A fixture with a `.node-version` file (e.g. `22`) is installed with that Node major, run
 * through `npx -y -p node@<major>` (install scripts then run on that Node too).
 *
 *   node scripts/install-fixtures.mjs            # every fixture with a package-lock.json
 *   node scripts/install-fixtures.mjs nuxt45     # only these
 *   node scripts/install-fixtures.mjs --force    # reinstall even when the stamp matches
 *
 * Also imported by the tests (`ensureFixtures`), which install a missing fixture themselves.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const fixturesRoot = fileURLToPath(new URL('../test/fixtures/', import.meta.url))
const STAMP = '.ws-proxy-fixture-stamp'

/** Names of the fixtures that have their own package-lock.json. */
export function lockedFixtures() {
  return readdirSync(fixturesRoot, { withFileTypes: true })
    .filter(entry => entry.isDirectory() && existsSync(join(fixturesRoot, entry.name, 'package-lock.json')))
    .map(entry => entry.name)
    .sort()
}

/** The Node major a fixture wants (its `.node-version`), or `undefined` for the current Node. */
export function fixtureNodeMajor(name) {
  const file = join(fixturesRoot, name, '.node-version')
  if (!existsSync(file)) return undefined
  const major = readFileSync(file, 'utf8').trim().replace(/^v/, '').split('.')[0]
  if (!/^\d+$/.test(major)) throw new Error(`${file}: expected a Node major like "22", got ${JSON.stringify(major)}`)
  return major
}

/** What the stamp of an up-to-date install of `name` says. */
export function expectedStamp(name) {
  const lock = readFileSync(join(fixturesRoot, name, 'package-lock.json'))
  const node = fixtureNodeMajor(name) ?? process.versions.node.split('.')[0]
  return `package-lock.json sha256=${createHash('sha256').update(lock).digest('hex')} node=${node}\n`
}

/** Whether `name`'s node_modules was installed from its current package-lock.json. */
export function isInstalled(name) {
  const stamp = join(fixturesRoot, name, 'node_modules', STAMP)
  return existsSync(stamp) && readFileSync(stamp, 'utf8') === expectedStamp(name)
}

function run(command, args, cwd) {
  return new Promise((resolvePromise) => {
    const child = spawn(command, args, {
      cwd,
      env: { ...process.env, NO_COLOR: '1', npm_config_update_notifier: 'false' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (chunk) => { output += chunk })
    child.stderr.on('data', (chunk) => { output += chunk })
    child.on('error', (error) => { output += String(error); resolvePromise({ code: -1, output }) })
    child.on('close', code => resolvePromise({ code, output }))
  })
}

/**
 * Run `npm ci` in `name` (with its Node major) and stamp it. Resolves `{ name, installed, ms }`;
 * rejects with npm's output when the install fails.
 */
export async function installFixture(name, { force = false, log = console.log } = {}) {
  const cwd = join(fixturesRoot, name)
  if (!force && isInstalled(name)) return { name, installed: false, ms: 0 }
  const started = Date.now()
  const wanted = fixtureNodeMajor(name)
  // No detour through npx when this Node already is the wanted major.
  const major = wanted === process.versions.node.split('.')[0] ? undefined : wanted
  const npmArgs = ['ci', '--no-audit', '--no-fund', '--prefer-offline']
  // `npx -p node@N -c 'npm …'` puts node@N first on PATH: npm and the install scripts run on it.
  const { code, output } = major
    ? await run('npx', ['-y', '-p', `node@${major}`, '-c', `npm ${npmArgs.join(' ')}`], cwd)
    : await run(process.platform === 'win32' ? 'npm.cmd' : 'npm', npmArgs, cwd)
  if (code !== 0) throw new Error(`npm ci in test/fixtures/${name} failed (exit ${code}):\n${output}`)
  writeFileSync(join(cwd, 'node_modules', STAMP), expectedStamp(name))
  const ms = Date.now() - started
  log(`[install-fixtures] ${name}: npm ci (node ${wanted ?? process.versions.node.split('.')[0]}) in ${(ms / 1000).toFixed(1)} s`)
  return { name, installed: true, ms }
}

/** Install the given fixtures (default: all locked ones) that are not up to date, in parallel. */
export async function ensureFixtures(names = lockedFixtures(), options = {}) {
  const results = await Promise.allSettled(names.map(name => installFixture(name, options)))
  const failures = results.filter(result => result.status === 'rejected').map(result => result.reason)
  if (failures.length) throw new AggregateError(failures, failures.map(error => error.message).join('\n\n'))
  return results.map(result => result.value)
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2)
  const force = args.includes('--force')
  const names = args.filter(arg => !arg.startsWith('--'))
  const known = lockedFixtures()
  const unknown = names.filter(name => !known.includes(name))
  if (unknown.length) {
    console.error(`[install-fixtures] no package-lock.json in test/fixtures/${unknown.join(', ')} (known: ${known.join(', ')})`)
    process.exit(1)
  }
  try {
    const results = await ensureFixtures(names.length ? names : known, { force })
    const fresh = results.filter(result => !result.installed).map(result => result.name)
    if (fresh.length) console.log(`[install-fixtures] up to date: ${fresh.join(', ')}`)
  }
  catch (error) {
    console.error(error.message)
    process.exit(1)
  }
}
