/**
 * The Nitro module under `nitropack dev` (dev server + worker), rule targets set by env
 * variables, then the shared behaviour suite.
 */
import { afterAll, beforeAll } from 'vitest'
import { cleanup, type Upstream } from '../helpers'
import { type ChildServer, fixtureDir, startNitroDev } from './harness'
import { describeProxyBehaviour, fixtureEnv, startFixtureUpstream } from './suite'

const rootDir = fixtureDir('nitro-app')
let upstream: Upstream
let server: ChildServer | undefined

beforeAll(async () => {
  upstream = await startFixtureUpstream()
  server = await startNitroDev(rootDir, fixtureEnv(upstream))
}, 120_000)

afterAll(async () => {
  await server?.stop()
  await cleanup()
})

describeProxyBehaviour('nitropack dev', () => ({ url: server!.url, upstream }))
