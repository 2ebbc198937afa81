/**
 * The Nuxt module in a Nuxt 5 nightly app (Nitro 3, h3 2, crossws 0.4) on Node 22
 * (test/fixtures/nuxt5, its own install, versions pinned in its package-lock.json):
 * `nuxi build` output and `nuxi dev`, the same checks as the Nuxt 4.5 line. See test/nuxt/lines.ts.
 */
import { describeNuxtLine } from './lines'

describeNuxtLine('nuxt5', { label: 'Nuxt 5 nightly (Node 22)', pageText: 'nitro-ws-proxy Nuxt 5 nightly on Node 22 fixture', dev: true })
