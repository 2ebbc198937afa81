import { defineBuildConfig } from 'unbuild'

export default defineBuildConfig({
  entries: [
    // The core and the two modules are bundled entries.
    { input: 'src/index', name: 'index' },
    { input: 'src/nitro/index', name: 'nitro' },
    { input: 'src/nuxt/index', name: 'nuxt' },
    // Runtime files ship file by file so Nitro bundles them into the user's server.
    { builder: 'mkdist', input: 'src/runtime', outDir: 'dist/runtime' },
    // The one core file the runtime imports (its upgrade rejections), shipped beside it.
    { builder: 'mkdist', input: 'src/core', outDir: 'dist/core', pattern: ['reject.ts'] },
  ],
  declaration: 'node16',
  clean: true,
  externals: ['nitropack', 'nitropack/types', '@nuxt/kit', '@nuxt/schema', 'h3', 'crossws', 'ws', 'defu'],
  rollup: { emitCJS: false },
})
