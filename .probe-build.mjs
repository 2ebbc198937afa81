import { build, copyPublicAssets, createNitro, prepare, prerender } from 'nitropack/core'
const [rootDir, preset, out] = process.argv.slice(2)
const t0 = Date.now()
try {
  const nitro = await createNitro({ rootDir, dev: false, preset, buildDir: `${out}/.nitro`, output: { dir: `${out}/output` }, logLevel: 3, minify: process.env.MINIFY !== "0" })
  console.log('options.node', nitro.options.node, 'preset', nitro.options.preset, 'output', JSON.stringify(nitro.options.output))
  await prepare(nitro); await copyPublicAssets(nitro); await prerender(nitro); await build(nitro); await nitro.close()
  console.log('BUILD OK', Date.now() - t0, 'ms')
} catch (e) { console.log('BUILD FAILED', Date.now() - t0, e); process.exitCode = 1 }
