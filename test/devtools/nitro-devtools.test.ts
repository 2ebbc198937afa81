/**
 * The live view of the Nitro playground in a real Chromium: `nitropack dev` on playground/ with
 * its `/chat/**` rule pointed at a real `ws` upstream; the page (reached through the playground's
 * link) shows a connection the test opens, its bytes and messages, then its close and cause.
 * Screenshots of both states go to test/artifacts/. A node-server build has no such routes.
 */
import { fileURLToPath } from 'node:url'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startUpstream, wsConnect, type TestClient, type Upstream } from '../helpers'
import { buildNodeServer, startNitroDev, startNodeServer, type ChildServer } from '../nitro/harness'
import type { DevtoolsState } from '../../src/runtime/devtools-state'
import { eventually, hasChromium, launchChromium, saveScreenshot, viewRows } from './browser'

const playground = fileURLToPath(new URL('../../playground/', import.meta.url))
const ROUTE = '/chat/**'

describe.skipIf(!hasChromium())('live view under nitropack dev (playground)', () => {
  let upstream: Upstream
  let server: ChildServer
  let browser: Browser
  let page: Page
  let client: TestClient | undefined

  beforeAll(async () => {
    upstream = await startUpstream()
    ;[server, browser] = await Promise.all([
      startNitroDev(playground, { NITRO_WS_PROXY_CHAT_TARGET: `${upstream.url}/rooms/**` }),
      launchChromium(),
    ])
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  }, 120_000)

  afterAll(async () => {
    if (client?.isOpen) client.ws.terminate()
    await browser?.close().catch(() => {})
    await server?.stop()
    await upstream?.close()
  }, 20_000)

  const state = async (): Promise<DevtoolsState> => {
    const res = await fetch(`${server.url}/_ws-proxy/devtools/state`)
    expect(res.status).toBe(200)
    return res.json() as Promise<DevtoolsState>
  }

  it('is linked from the playground page and lists the route with its target', async () => {
    await page.goto(`${server.url}/`)
    await page.click('a#live-view')
    await page.waitForURL(/\/_ws-proxy\/devtools$/, { timeout: 10_000 })
    const card = page.locator(`section.route[data-route="${ROUTE}"]`)
    await card.waitFor({ timeout: 10_000 })
    // The rule's target as overridden at runtime (NITRO_WS_PROXY_CHAT_TARGET), origin only.
    expect(await card.textContent()).toContain(upstream.url)
    await expect.poll(() => page.textContent('#status'), { timeout: 5_000 }).toBe('live')
  }, 30_000)

  it('shows a connection opened by the test with its bytes and messages, then its close and cause', async () => {
    client = await wsConnect(`${server.url.replace(/^http/, 'ws')}/chat/devtools-test`)
    for (let i = 1; i <= 5; i++) {
      client.send(`hello ${i}`)
      expect((await client.next()).text).toBe(`hello ${i}`)
    }
    // The id the server gave this connection (the only one on /rooms/devtools-test).
    const id = await eventually(async () => {
      const route = (await state()).routes.find(r => r.route === ROUTE)
      return route?.connections.find(c => c.upstream?.endsWith('/rooms/devtools-test'))?.id
    }, 5_000, 'the connection in the state endpoint')

    // 5 messages of 7 bytes each way.
    const open = await eventually(async () => {
      const row = (await viewRows(page, 'connections')).find(r => r.id === id)
      return row && row.cells.includes('35 B / 35 B') && row.cells.includes('5 / 5') ? row : undefined
    }, 5_000, `connection ${id} with 35 B / 35 B in the page`)
    expect(open.route).toBe(ROUTE)
    expect(open.cells.join(' ')).toContain(`${new URL(upstream.url).host}/rooms/devtools-test`)
    // The graph saw traffic: a messages/s peak over the last minute.
    await expect.poll(() => page.textContent('#msg-max'), { timeout: 5_000 }).not.toBe('0')
    console.log(`[live view] screenshot ${await saveScreenshot(page, 'nitro-live-view-open')}`)

    await client.close(1000, 'done')
    const closed = await eventually(async () => {
      const row = (await viewRows(page, 'closes')).find(r => r.id === id)
      return row?.cause === 'client' ? row : undefined
    }, 5_000, `close of ${id} in the page`)
    expect(closed.cells).toContain('client') // ended by
    expect(closed.cells).toContain('1000 done') // the close the client sent
    expect((await viewRows(page, 'connections')).some(r => r.id === id)).toBe(false)
    console.log(`[live view] screenshot ${await saveScreenshot(page, 'nitro-live-view-closed')}`)
  }, 30_000)
})

describe('production build (node-server)', () => {
  let server: ChildServer | undefined

  afterAll(() => server?.stop(), 20_000)

  it('answers 404 on the live view routes', async () => {
    await buildNodeServer(playground)
    server = await startNodeServer(playground, { NITRO_WS_PROXY_CHAT_TARGET: 'ws://127.0.0.1:9/rooms/**' })
    for (const path of ['/_ws-proxy/devtools', '/_ws-proxy/devtools/state']) {
      const res = await fetch(`${server.url}${path}`)
      expect(res.status, path).toBe(404)
      expect(await res.text()).not.toContain('WebSocket proxy')
    }
    // The proxied route itself is there.
    expect((await fetch(`${server.url}/chat/lobby`)).status).toBe(426)
  }, 90_000)
})
