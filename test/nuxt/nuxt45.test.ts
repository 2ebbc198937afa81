/**
 * The Nuxt module in a Nuxt 4.5 app on Node 22 (test/fixtures/nuxt45, its own install):
 * `nuxi build` output and `nuxi dev`. See test/nuxt/lines.ts.
 */
import { describeNuxtLine } from './lines'

describeNuxtLine('nuxt45', { label: 'Nuxt 4.5 (Node 22)', pageText: 'nitro-ws-proxy Nuxt 4.5 on Node 22 fixture', dev: true })
