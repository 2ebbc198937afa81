// Builds a fixture with a Nitro preset, like `nitropack build` (prepare, public assets, prerender,
// build), into <outDir>/output with its build dir in <outDir>/build: outside the fixture, so
// presets that write next to the app (`.vercel/`, `.netlify/`, `dist/`) leave it untouched.
// Used by test/nitro/presets.test.ts and by the benchmark (bench/run.mjs: the nitro-0.3 and
// nitro3 targets) as a child process (killed by pid on timeout).
// Usage: node build-preset.mjs <rootDir> <preset> <outDir> [<Nitro 3 package dir>]: with the
// last argument, that `nitro` package's builder (Nitro 3), else nitropack 2's. Exit code 1 and
// the error on stderr when the build fails.
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const [rootDir, preset, outDir, nitroDir] = process.argv.slice(2)
try {
  // Both lines' builders export the same five functions.
  const { build, copyPublicAssets, createNitro, prepare, prerender } = nitroDir
    ? await import(pathToFileURL(join(nitroDir, 'dist/builder.mjs')).href)
    : await import('nitropack/core')
  const nitro = await createNitro({
    rootDir,
    preset,
    dev: false,
    buildDir: `${outDir}/build`,
    output: { dir: `${outDir}/output`, serverDir: `${outDir}/output/server`, publicDir: `${outDir}/output/public` },
    logLevel: 1,
  })
  try {
    await prepare(nitro)
    await copyPublicAssets(nitro)
    await prerender(nitro)
    await build(nitro)
  }
  finally {
    await nitro.close()
  }
  process.stdout.write(`BUILT ${preset}\n`)
}
catch (error) {
  process.stderr.write(`${error?.stack || error}\n`)
  process.exitCode = 1
}
