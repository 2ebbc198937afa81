import wsProxy from '../../dist/nitro.mjs'

// The `nitro3` target of the benchmark (bench/run.mjs): this package inside a built Nitro 3
// server (the `nitro` package of test/fixtures/nitro3-app, node-server preset, h3 2, crossws 0.4),
// beside `nitro-0.3` (bench/nitro-app, nitropack 2) in the same run. Built by
// test/nitro/build-preset.mjs like that app. No `defineConfig` import: `nitro` is installed only in
// the fixture, and the builder reads a plain object the same way. The target is set at start
// with NITRO_WS_PROXY_BENCH_TARGET; the one below is a placeholder nobody listens on.
export default {
  compatibilityDate: '2025-01-01',
  modules: [wsProxy],
  routeRules: {
    // /bench/x → <target>/x (the echo upstream answers on any path).
    '/bench/**': { wsProxy: 'ws://127.0.0.1:9/**' },
  },
}
