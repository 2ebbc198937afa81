/**
 * The Nuxt module in a real `nuxi build` output started by @nuxt/test-utils, rule targets set
 * by NUXT_WS_PROXY_<NAME>_TARGET, then the shared behaviour suite.
 */
import { setup, url } from '@nuxt/test-utils/e2e'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cleanup, type Upstream } from '../helpers'
import { fixtureDir } from '../nitro/harness'
import { describeProxyBehaviour, fixtureEnv, startFixtureUpstream } from '../nitro/suite'

let upstream: Upstream

// Runs before setup()'s own beforeAll, which starts the server with process.env.
beforeAll(async () => {
  upstream = await startFixtureUpstream()
  Object.assign(process.env, fixtureEnv(upstream, 'NUXT_'))
})

afterAll(() => cleanup())

await setup({ rootDir: fixtureDir('nuxt-app'), server: true, build: true })

const appUrl = () => url('/').replace(/\/$/, '')

describe('Nuxt build', () => {
  it('still renders pages', async () => {
    const html = await (await fetch(`${appUrl()}/`)).text()
    expect(html).toContain('nitro-ws-proxy Nuxt fixture')
  })
})

describeProxyBehaviour('Nuxt build', () => ({ url: appUrl(), upstream }), { sessionCookie: 'nuxt-session' })
