import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** Runs an ESM snippet in a fresh Node process from the package root (self-reference by name). */
function runModule(code: string): string {
  return execFileSync(process.execPath, ['--input-type=module', '-e', code], { cwd: root, encoding: 'utf8', timeout: 20_000 })
}

describe('package entry points (built dist)', () => {
  it('the root entry is the core alone: no nitropack, @nuxt/kit or h3 is loaded', () => {
    const out = runModule(`
      const mod = await import('nitro-ws-proxy')
      console.log(JSON.stringify({ exports: Object.keys(mod) }))
    `)
    const { exports } = JSON.parse(out) as { exports: string[] }
    expect(exports).toEqual(['createWebSocketProxy', 'fixDenoAdapter', 'rejectUpgrade'])
    // The bundle has no import of any framework package (it inlines its own few helpers).
    const source = readFileSync(`${root}/dist/index.mjs`, 'utf8')
    expect(source).not.toMatch(/from ['"](h3|nitropack|@nuxt\/kit|nuxt)['"/]/)
    expect(source).not.toMatch(/import\(['"](h3|nitropack|@nuxt\/kit)['"/]/)
  })

  it('./nitro and ./nuxt resolve to module factories', () => {
    const out = runModule(`
      const nitro = await import('nitro-ws-proxy/nitro')
      const nuxt = await import('nitro-ws-proxy/nuxt')
      console.log(JSON.stringify({ nitro: typeof nitro.default, nuxt: typeof nuxt.default }))
    `)
    const types = JSON.parse(out) as { nitro: string, nuxt: string }
    expect(['object', 'function']).toContain(types.nitro)
    expect(types.nuxt).toBe('function')
  })

  it('package.json lists types first for every export and ships only dist', () => {
    const pkg = JSON.parse(readFileSync(`${root}/package.json`, 'utf8'))
    for (const entry of ['.', './nitro', './nuxt']) {
      expect(Object.keys(pkg.exports[entry])[0]).toBe('types')
    }
    expect(pkg.files).toEqual(['dist'])
    expect(pkg.type).toBe('module')
    expect(pkg.sideEffects).toBe(false)
  })
})
