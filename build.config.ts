import { defineBuildConfig } from 'unbuild'

export default defineBuildConfig({
  entries: [
    // The core and the two modules are bundled entries.
    { input: 'src/index', name: 'index' },
    { input: 'src/nitro/index', name: 'nitro' },
    { input: 'src/nuxt/index', name: 'nuxt' },
    // Runtime files ship file by file so Nitro bundles them into the user's server.
    { builder: 'mkdist', input: 'src/runtime', outDir: 'dist/runtime' },
    // The core files the runtime imports (upgrade rejections, the Deno adapter fix, the public
    // types its declarations name), shipped beside it.
    { builder: 'mkdist', input: 'src/core', outDir: 'dist/core', pattern: ['reject.ts', 'deno-adapter.ts', 'types.ts'] },
  ],
  declaration: 'node16',
  clean: true,
  externals: ['nitropack', 'nitropack/types', '@nuxt/kit', '@nuxt/schema', 'h3', 'crossws', 'ws', 'defu'],
  rollup: { emitCJS: false },
  hooks: {
    // Nitro 3 type augmentations (`h3/rules`, `nitro/types`): a hand-written declaration file,
    // since the repo's own type check has no Nitro 3 installed to resolve those modules against.
    async 'build:done'() {
      const { copyFile, readFile, writeFile } = await import('node:fs/promises')
      await copyFile('src/types/nitro3.d.mts', 'dist/nitro3.d.mts')
      // `nitro-ws-proxy/runtime` (mkdist writes .d.ts): also as .d.mts, where a tsconfig path
      // alias to dist/runtime/index.mjs (Nuxt's generated tsconfig) looks for its declarations.
      await copyFile('dist/runtime/index.d.ts', 'dist/runtime/index.d.mts')
      for (const file of ['dist/nitro.d.mts', 'dist/nuxt.d.mts']) {
        const text = await readFile(file, 'utf8')
        const reference = '/// <reference path="./nitro3.d.mts" />\n'
        if (!text.startsWith(reference)) await writeFile(file, reference + text)
      }
    },
  },
})
