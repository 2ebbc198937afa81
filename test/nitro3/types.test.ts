/**
 * Types in a Nitro 3 app (issue 13: "`wsProxy` is typed in Nitro v3's route rules (an unknown
 * option is a type error there too)"). test/fixtures/nitro3-types is a user's `nitro.config.ts`
 * (`defineConfig` from `nitro`, the module imported from `nitro-ws-proxy/nitro`), a plugin using
 * the `ws-proxy:*` hooks and a route importing `nitro-ws-proxy/runtime`.
 *
 * Inside this repo `h3/rules` and `nitro/types` do not resolve to Nitro 3 (the repo's h3 is 1.x),
 * so the check runs in a temporary folder outside the repo, laid out as npm installs an app: the
 * fixture's files, the nitro3-app fixture's node_modules (nitro 3 beta, h3 2) linked entry by
 * entry, and this package copied as its tarball holds it (`package.json` and `dist/`). Nothing
 * from the repo's own node_modules (nitropack, h3 1) is reachable from there. Checked with the
 * real `tsc` and the app's tsconfig extending `nitro/tsconfig`.
 *
 * A config that lists the module by name (`modules: ['nitro-ws-proxy/nitro']`) imports nothing
 * that declares `wsProxy`, and Nitro 3 (3.0.260903-beta) generates no types a module could add
 * to (no `.nitro/types`, no `types:extend` hook; its `typescript` option is only the bundler's
 * `tsConfig`). Checked here in projects of their own: without a line for the types `wsProxy` is
 * a type error; with the line docs/nitro.md gives (`import type {} from 'nitro-ws-proxy/nitro'`,
 * or `/// <reference types="nitro-ws-proxy/nitro" />`) the rules are typed, typos included.
 */
import { execFile } from 'node:child_process'
import { cp, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// @ts-expect-error plain .mjs script without types
import { ensureFixtures } from '../../scripts/install-fixtures.mjs'
import { fixtureDir, repoRoot } from '../nitro/harness'

const tsc = fileURLToPath(new URL('../../node_modules/typescript/bin/tsc', import.meta.url))
let appDir = ''

function typeCheck(project = appDir): Promise<{ code: number, output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [tsc, '-p', project], { timeout: 90_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, output: `${stdout}${stderr}` })
    })
  })
}

describe('types of wsProxy route rules in a Nitro 3 app', () => {
  beforeAll(async () => {
    await ensureFixtures(['nitro3-app'])
    appDir = await mkdtemp(join(tmpdir(), 'ws-proxy-nitro3-types-'))
    await cp(fixtureDir('nitro3-types'), appDir, { recursive: true })
    const installed = join(fixtureDir('nitro3-app'), 'node_modules')
    const modules = join(appDir, 'node_modules')
    await mkdir(join(modules, 'nitro-ws-proxy'), { recursive: true })
    for (const entry of await readdir(installed)) {
      if (entry === 'nitro-ws-proxy' || entry.startsWith('.')) continue
      await symlink(join(installed, entry), join(modules, entry))
    }
    await cp(join(repoRoot, 'package.json'), join(modules, 'nitro-ws-proxy/package.json'))
    await cp(join(repoRoot, 'dist'), join(modules, 'nitro-ws-proxy/dist'), { recursive: true })
  }, 120_000)

  afterAll(async () => {
    if (appDir) await rm(appDir, { recursive: true, force: true })
  })

  it('accepts valid rules next to Nitro\'s own, module options, the hooks and nitro-ws-proxy/runtime', async () => {
    const { code, output } = await typeCheck()
    expect(output).toBe('')
    expect(code).toBe(0)
  }, 90_000)

  it('reports a typo inside wsProxy, a wrong option type, a module option typo and a typo in the hook context', async () => {
    const typo = join(appDir, 'typo.tmp.ts')
    await writeFile(typo, [
      `import { defineConfig, definePlugin } from 'nitro'`,
      `import { useWsProxy } from 'nitro-ws-proxy/runtime'`,
      `export default defineConfig({`,
      `  routeRules: {`,
      `    '/live/**': { wsProxy: { target: 'ws://127.0.0.1:9002/**', conectTimeout: 5000 } },`,
      `    '/b/**': { 'ws-proxy': { target: 'ws://127.0.0.1:9002/**', maxBufferSize: 'big' } },`,
      `  },`,
      `  wsProxy: { clinet: 'ws' },`,
      `})`,
      `export const plugin = definePlugin((nitroApp) => {`,
      `  nitroApp.hooks.hook('ws-proxy:auth', (ctx) => { ctx.denny = true })`,
      `})`,
      `export const open: string = useWsProxy().stats()['/live/**']!.open`,
      '',
    ].join('\n'))
    try {
      const { code, output } = await typeCheck()
      expect(code).not.toBe(0)
      expect(output).toMatch(/typo\.tmp\.ts\(5,\d+\): error TS2561: .*'conectTimeout' does not exist in type 'WsProxyRuleOptions'/)
      expect(output).toMatch(/typo\.tmp\.ts\(6,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/)
      expect(output).toMatch(/typo\.tmp\.ts\(8,\d+\): error TS2561: .*'clinet' does not exist in type 'WsProxyModuleOptions'/)
      expect(output).toMatch(/typo\.tmp\.ts\(11,\d+\): error TS2551: Property 'denny' does not exist on type 'WsProxyAuthContext'/)
      expect(output).toMatch(/typo\.tmp\.ts\(13,\d+\): error TS2322: Type 'number' is not assignable to type 'string'/)
      // Nothing else in the app fails.
      expect(output.split('\n').filter(line => /error TS/.test(line) && !line.includes('typo.tmp.ts('))).toEqual([])
    }
    finally {
      await rm(typo, { force: true })
    }
  }, 90_000)

  /**
   * A config that lists the module by name (`modules: ['nitro-ws-proxy/nitro']`), in a project
   * of its own (augmentations are per program: the main fixture's import would apply to it).
   * `firstLine` is what docs/nitro.md tells such an app to add.
   */
  async function byNameProject(name: string, firstLine: string, wsProxyRule: string): Promise<string> {
    const dir = join(appDir, name)
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({ extends: 'nitro/tsconfig', include: ['nitro.config.ts'] }))
    await writeFile(join(dir, 'nitro.config.ts'), [
      firstLine,
      `import { defineConfig } from 'nitro'`,
      `export default defineConfig({`,
      `  modules: ['nitro-ws-proxy/nitro'],`,
      `  routeRules: {`,
      `    '/live/**': { wsProxy: ${wsProxyRule} },`,
      `    '/api/**': { cors: true },`,
      `  },`,
      `  wsProxy: { client: 'auto' },`,
      `})`,
      '',
    ].join('\n'))
    return dir
  }

  describe('module listed by name (Nitro 3 generates no types for modules to extend)', () => {
    it('without a line for the types, wsProxy is a type error (so the docs\' line is needed)', async () => {
      const { code, output } = await typeCheck(await byNameProject('by-name-bare', '// no types line', `'ws://127.0.0.1:9002/**'`))
      expect(code).not.toBe(0)
      expect(output).toMatch(/nitro\.config\.ts\(6,\d+\): error TS\d+: .*'wsProxy' does not exist in type 'RouteRuleConfig'/)
    }, 90_000)

    for (const [label, line] of [
      ['import type {} from \'nitro-ws-proxy/nitro\'', `import type {} from 'nitro-ws-proxy/nitro'`],
      ['/// <reference types="nitro-ws-proxy/nitro" />', `/// <reference types="nitro-ws-proxy/nitro" />`],
    ] as const) {
      it(`with \`${label}\`: the rules and options type-check, and a typo inside wsProxy is still an error`, async () => {
        const slug = label.startsWith('import') ? 'import' : 'reference'
        const good = await typeCheck(await byNameProject(`by-name-${slug}`, line, `{ target: 'ws://127.0.0.1:9002/**', connectTimeout: 5000 }`))
        expect(good.output).toBe('')
        expect(good.code).toBe(0)
        const typo = await typeCheck(await byNameProject(`by-name-${slug}-typo`, line, `{ target: 'ws://127.0.0.1:9002/**', conectTimeout: 5000 }`))
        expect(typo.code).not.toBe(0)
        expect(typo.output).toMatch(/nitro\.config\.ts\(6,\d+\): error TS2561: .*'conectTimeout' does not exist in type 'WsProxyRuleOptions'/)
      }, 90_000)
    }
  })
})
