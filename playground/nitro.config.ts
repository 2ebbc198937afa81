import { defineNitroConfig } from 'nitropack/config'
import wsProxy from '../dist/nitro.mjs'

// `npm run dev` (playground/dev.mjs) starts the demo backend on a free port and points this
// rule at it with NITRO_WS_PROXY_CHAT_TARGET; the target below is only the built-in default.
export default defineNitroConfig({
  compatibilityDate: '2025-01-01',
  modules: [wsProxy],
  routeRules: {
    // /chat/<room> → ws://<backend>/rooms/<room>
    '/chat/**': { wsProxy: { target: 'ws://127.0.0.1:8787/rooms/**', connectTimeout: 5000 } },
  },
})
