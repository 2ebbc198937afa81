/**
 * nitropack 2 only: the shutdown plugin (runtime/plugin.ts) with nitropack's `useRuntimeConfig`.
 * The module adds this file to `plugins` on nitropack 2; on Nitro 3 it generates the equivalent
 * with `nitro/runtime-config` instead (`#nitro-ws-proxy/shutdown`).
 */
import { useRuntimeConfig } from 'nitropack/runtime'
import { defineWsProxyShutdown } from './plugin'

export default defineWsProxyShutdown(useRuntimeConfig)
