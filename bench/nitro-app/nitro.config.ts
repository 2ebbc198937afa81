import { defineNitroConfig } from 'nitropack/config'
import wsProxy from '../../dist/nitro.mjs'

// The `nitro-0.3` target of the benchmark (bench/run.mjs): this package inside a built Nitro
// server (node-server preset, nitropack 2.13, crossws 0.3), as users run it. Built once per bench
// run by test/nitro/build-preset.mjs into a cache folder outside the project (reused while dist/ and
// this folder are unchanged). The upstream port is ephemeral: run.mjs sets the target with
// NITRO_WS_PROXY_BENCH_TARGET, so the one below is a placeholder nobody listens on.
export default defineNitroConfig({
  compatibilityDate: '2025-01-01',
  modules: [wsProxy],
  routeRules: {
    // /bench/x → <target>/x (the echo upstream answers on any path).
    '/bench/**': { wsProxy: 'ws://127.0.0.1:9/**' },
  },
})
