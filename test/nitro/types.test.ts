/**
 * Types in a user's app (issue 4: "a typo is a type error in the user's config"). The fixture
 * lists the module by package name only (`modules: ['nitro-ws-proxy/nitro']`, no import), so the
 * `wsProxy` route rule types must come from Nitro's generated `.nitro/types/tsconfig.json`, which
 * the module extends. Type-checked with the real `tsc` against the package's built types.
 */
import { execFile } from 'node:child_process'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fixtureDir } from './harness'

const rootDir = fixtureDir('nitro-types')
const tsc = fileURLToPath(new URL('../../node_modules/typescript/bin/tsc', import.meta.url))
const typoFile = `${rootDir}typo.tmp.ts`

function typeCheck(): Promise<{ code: number, output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [tsc, '-p', rootDir], { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, output: `${stdout}${stderr}` })
    })
  })
}

describe('types of wsProxy route rules in a Nitro app that lists the module by name', () => {
  beforeAll(async () => {
    // What `nitropack prepare` / `nitropack build` / `nitropack dev` do first: generate the types.
    const { createNitro, writeTypes } = await import('nitropack/core')
    const nitro = await createNitro({ rootDir, dev: false, preset: 'node-server', logLevel: 1 })
    try {
      await writeTypes(nitro)
    }
    finally {
      await nitro.close()
    }
  }, 60_000)

  afterAll(() => rm(typoFile, { force: true }))

  it('adds the package types to the generated tsconfig', async () => {
    const tsconfig = JSON.parse(await readFile(`${rootDir}.nitro/types/tsconfig.json`, 'utf8'))
    expect(tsconfig.include).toContain('./nitro-ws-proxy.d.ts')
    const declarations = await readFile(`${rootDir}.nitro/types/nitro-ws-proxy.d.ts`, 'utf8')
    expect(declarations).toMatch(/<reference path=".*\/dist\/nitro\.d\.mts" \/>/)
  })

  it('accepts valid rules, module options and the ws-proxy:auth hook', async () => {
    await rm(typoFile, { force: true })
    const { code, output } = await typeCheck()
    expect(output).toBe('')
    expect(code).toBe(0)
  }, 60_000)

  it('reports a typo inside wsProxy, a wrong option type and a typo in the hook context', async () => {
    await writeFile(typoFile, [
      `import { defineNitroConfig } from 'nitropack/config'`,
      `export default defineNitroConfig({`,
      `  modules: ['nitro-ws-proxy/nitro'],`,
      `  routeRules: {`,
      `    '/live/**': { wsProxy: { target: 'ws://127.0.0.1:9002/**', conectTimeout: 5000 } },`,
      `    '/b/**': { 'ws-proxy': { target: 'ws://127.0.0.1:9002/**', maxBufferSize: 'big' } },`,
      `  },`,
      `})`,
      `export const plugin = defineNitroPlugin((nitroApp) => {`,
      `  nitroApp.hooks.hook('ws-proxy:auth', (ctx) => { ctx.denny = true })`,
      `})`,
      '',
    ].join('\n'))
    const { code, output } = await typeCheck()
    expect(code).not.toBe(0)
    expect(output).toMatch(/typo\.tmp\.ts\(5,\d+\): error TS2561: .*'conectTimeout' does not exist in type 'WsProxyRuleOptions'/)
    expect(output).toMatch(/typo\.tmp\.ts\(6,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/)
    expect(output).toMatch(/typo\.tmp\.ts\(10,\d+\): error TS2551: Property 'denny' does not exist/)
    // Nothing else in the fixture fails.
    expect(output.split('\n').filter(line => /error TS/.test(line) && !line.includes('typo.tmp.ts('))).toEqual([])
  }, 60_000)
})
