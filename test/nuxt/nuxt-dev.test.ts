/**
 * The Nuxt module under `nuxi dev` (started by @nuxt/test-utils), rule targets set by
 * NUXT_WS_PROXY_<NAME>_TARGET, then the shared behaviour suite.
 */
import { setup, url } from '@nuxt/test-utils/e2e'
import { afterAll, beforeAll } from 'vitest'
import { cleanup, type Upstream } from '../helpers'
import { fixtureDir } from '../nitro/harness'
import { describeProxyBehaviour, fixtureEnv, startFixtureUpstream } from '../nitro/suite'

let upstream: Upstream
// Not .nuxt: the build test may be using it at the same time.
process.env.WS_PROXY_FIXTURE_BUILD_DIR = '.nuxt/dev-test'

// Runs before setup()'s own beforeAll, which starts `nuxi _dev` with process.env.
beforeAll(async () => {
  upstream = await startFixtureUpstream()
  Object.assign(process.env, fixtureEnv(upstream, 'NUXT_'))
})

afterAll(() => cleanup())

await setup({ rootDir: fixtureDir('nuxt-app'), dev: true, server: true })

describeProxyBehaviour('nuxi dev', () => ({ url: url('/').replace(/\/$/, ''), upstream }), { sessionCookie: 'nuxt-session' })
