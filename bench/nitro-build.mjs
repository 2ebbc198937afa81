// Builds a bench app with the node-server preset into <outDir>/output (build dir <outDir>/build):
// nothing is written next to the app. Run by bench/run.mjs as a child process before the first
// cell of the `nitro-0.3` target (bench/nitro-app, nitropack 2 from this project) and of the
// `nitro3` target (bench/nitro3-app, with the Nitro 3 `nitro` package installed in
// test/fixtures/nitro3-app: `node scripts/install-fixtures.mjs nitro3-app`).
//   node bench/nitro-build.mjs <rootDir> <outDir> [<Nitro 3 package dir>]
// Prints BUILT on success; exit code 1 and the error on stderr when the build fails.
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const [rootDir, outDir, nitroDir] = process.argv.slice(2)
try {
  // Both lines' builders export the same five functions.
  const { build, copyPublicAssets, createNitro, prepare, prerender } = nitroDir
    ? await import(pathToFileURL(join(nitroDir, 'dist/builder.mjs')).href)
    : await import('nitropack/core')
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
