// Builds bench/nitro3-app with Nitro 3 (the `nitro` package installed in test/fixtures/nitro3-app,
// `node scripts/install-fixtures.mjs nitro3-app`) and the node-server preset into <outDir>/output
// (build dir <outDir>/build), like bench/nitro-build.mjs does for nitropack 2. Run by
// bench/run.mjs as a child process before the first cell of the `nitro3` target.
//   node bench/nitro3-build.mjs <rootDir> <outDir> <nitro package dir>
// Prints BUILT on success; exit code 1 and the error on stderr when the build fails.
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const [rootDir, outDir, nitroDir] = process.argv.slice(2)
try {
  const { build, copyPublicAssets, createNitro, prepare, prerender } = await import(pathToFileURL(join(nitroDir, 'dist/builder.mjs')).href)
  const nitro = await createNitro({
    rootDir,
    preset: 'node-server',
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
  process.stdout.write('BUILT\n')
}
catch (error) {
  process.stderr.write(`${error?.stack || error}\n`)
  process.exitCode = 1
}
