/**
 * The live view and the Nuxt DevTools tab on Nuxt 5 nightly (Nitro 3): `nuxi dev` of
 * test/fixtures/nuxt5 (its own install, Node 22) with DevTools on (`WS_PROXY_FIXTURE_DEVTOOLS=1`,
 * Nuxt DevTools 4 beta on Vite DevTools), its `/live/**` rule pointed at a real `ws` upstream.
 *
 * - `nuxi dev` starts with DevTools on. It did not: the module's dev upgrade bridge
 *   (src/nuxt/dev-upgrades.ts) left its stand-in in Vite's `httpServer`, and Vite DevTools took
 *   it for a listening server (`httpServer.address is not a function`, nothing answered).
 * - Nuxt DevTools collects the tab: the fixture records what `devtools:customTabs` gathered.
 * - The live view in a real Chromium (the page the tab frames) and its state route show a
 *   connection the test opens, then its close and cause. Screenshots go to test/artifacts/.
 *
 * Not tested here: the tab inside DevTools' own UI, as test/devtools/nuxt-devtools.test.ts does
 * on Nuxt 4. Nuxt DevTools 4.0.0-beta.2 serves its client from `@nuxt/devtools-assets` of the
 * same version, which is not published on npm (only 4.0.0-alpha.16 is), and otherwise fetches it
 * from cdn.jsdelivr.net: offline (as here) DevTools shows "Failed to load assets remotely".
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DevtoolsState } from '../../src/runtime/devtools-state'
import { cleanup, startUpstream, wsConnect, type TestClient, type Upstream } from '../helpers'
import { fixtureDir } from '../nitro/harness'
import { fixtureEnv } from '../nitro/suite'
import { type FixtureServer, startDevFixture } from '../nuxt/lines'
import { eventually, hasChromium, launchChromium, saveScreenshot, viewRows } from './browser'

const ROUTE = '/live/**'
const BUILD_DIR = '.nuxt/devtools-test'

describe.skipIf(!hasChromium())('Nuxt 5 nightly: live view and DevTools tab under nuxi dev', () => {
  let upstream: Upstream
  let server: FixtureServer
  let browser: Browser
  let page: Page
  let client: TestClient | undefined

  beforeAll(async () => {
    upstream = await startUpstream()
    ;[server, browser] = await Promise.all([
      startDevFixture('nuxt5', { ...fixtureEnv(upstream, 'NUXT_'), WS_PROXY_FIXTURE_DEVTOOLS: '1', WS_PROXY_FIXTURE_BUILD_DIR: BUILD_DIR }),
      launchChromium(),
    ])
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  }, 200_000)

  afterAll(async () => {
    if (client?.isOpen) client.ws.terminate()
    await browser?.close().catch(() => {})
    await server?.stop()
    await upstream?.close()
    await cleanup()
  }, 20_000)

  const state = async (): Promise<DevtoolsState> => {
    const res = await fetch(`${server.url}/_ws-proxy/devtools/state`)
    expect(res.status).toBe(200)
    return res.json() as Promise<DevtoolsState>
  }

  it('starts with Nuxt DevTools on, which collects the "WebSocket proxy" tab', async () => {
    expect(server.output()).toMatch(/DevTools: press Shift \+ Alt \+ D/)
    expect(server.output()).not.toMatch(/address is not a function|ERROR/)
    const file = join(fixtureDir('nuxt5'), BUILD_DIR, 'ws-proxy-devtools-tabs.json')
    const tabs = await eventually(async () => existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) as Array<Record<string, any>> : undefined, 10_000, file)
    const tab = tabs.find(t => t.name === 'ws-proxy')
    expect(tab).toMatchObject({ title: 'WebSocket proxy', category: 'server', view: { type: 'iframe', src: '/_ws-proxy/devtools' } })
    // The tab's iframe source is the live view page.
    const res = await fetch(`${server.url}${tab!.view.src}`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/html/)
  }, 30_000)

  it('shows a proxied connection in the live view and the state route, then its close and cause', async () => {
    await page.goto(`${server.url}/_ws-proxy/devtools`)
    const card = page.locator(`section.route[data-route="${ROUTE}"]`)
    await card.waitFor({ timeout: 15_000 })
    expect(await card.textContent()).toContain(upstream.url)
    await expect.poll(() => page.textContent('#status'), { timeout: 5_000 }).toBe('live')

    client = await wsConnect(`${server.url.replace(/^http/, 'ws')}/live/devtools-nuxt5`)
    for (let i = 1; i <= 3; i++) {
      client.send(`tab ${i}`)
      expect((await client.next()).text).toBe(`tab ${i}`)
    }
    const id = await eventually(async () => {
      const route = (await state()).routes.find(r => r.route === ROUTE)
      return route?.connections.find(c => c.upstream?.endsWith('/echo/devtools-nuxt5'))?.id
    }, 5_000, 'the connection in the state route')
    const open = await eventually(async () => {
      const row = (await viewRows(page, 'connections')).find(r => r.id === id)
      return row && row.cells.includes('15 B / 15 B') && row.cells.includes('3 / 3') ? row : undefined
    }, 5_000, `connection ${id} with 15 B / 15 B in the page`)
    expect(open.route).toBe(ROUTE)
    console.log(`[nuxt5 live view] screenshot ${await saveScreenshot(page, 'nuxt5-live-view-open')}`)

    // The upstream ends it: cause `upstream`, its code on both legs.
    client.send('close:4000:bye')
    expect((await client.closed).code).toBe(4000)
    const closed = await eventually(async () => {
      const row = (await viewRows(page, 'closes')).find(r => r.id === id)
      return row?.cause === 'upstream' ? row : undefined
    }, 5_000, `close of ${id} in the page`)
    expect(closed.cells).toContain('4000 bye')
    expect((await viewRows(page, 'connections')).some(r => r.id === id)).toBe(false)
    console.log(`[nuxt5 live view] screenshot ${await saveScreenshot(page, 'nuxt5-live-view-closed')}`)
  }, 40_000)
})
