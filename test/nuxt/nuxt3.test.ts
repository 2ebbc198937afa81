/**
 * The Nuxt module in a Nuxt 3 app on Node 20 (test/fixtures/nuxt3, its own install):
 * `nuxi build` output and `nuxi dev`. See test/nuxt/lines.ts.
 */
import { describeNuxtLine } from './lines'

describeNuxtLine('nuxt3', { label: 'Nuxt 3 (Node 20)', pageText: 'nitro-ws-proxy Nuxt 3 on Node 20 fixture', dev: true })
