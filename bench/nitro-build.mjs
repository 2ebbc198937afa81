// Builds bench/nitro-app with the node-server preset, like `nitropack build`, into <outDir>/output
// (build dir <outDir>/build): nothing is written next to the app. Run by bench/run.mjs as a child
// process before the first cell of the `nitro-0.3` target.
//   node bench/nitro-build.mjs <rootDir> <outDir>
// Prints BUILT on success; exit code 1 and the error on stderr when the build fails.
import { build, copyPublicAssets, createNitro, prepare, prerender } from 'nitropack/core'

const [rootDir, outDir] = process.argv.slice(2)
try {
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
