/**
 * The "WebSocket proxy" tab of Nuxt DevTools in a real Chromium: `nuxi dev` on
 * test/fixtures/nuxt-devtools-app (DevTools enabled), its `/live/**` rule pointed at a real `ws`
 * upstream. The test opens DevTools in the app page, goes to the tab
 * (`/__nuxt_devtools__/client/modules/custom-ws-proxy`), finds the iframe it declares
 * (`/_ws-proxy/devtools`) and checks that it shows a connection the test opens and its close.
 * Screenshots of both states go to test/artifacts/.
 *
 * `nuxi dev` runs as a child process without vitest's `TEST`/`VITEST`/`NODE_ENV=test`: Nuxt
 * DevTools turns itself off under tests.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { Browser, Frame, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startUpstream, wsConnect, type TestClient, type Upstream } from '../helpers'
import { fixtureDir } from '../nitro/harness'
import { eventually, hasChromium, launchChromium, saveScreenshot, viewRows } from './browser'

const nuxiCli = fileURLToPath(new URL('../../node_modules/@nuxt/cli/bin/nuxi.mjs', import.meta.url))
const ROUTE = '/live/**'
const TAB_PATH = '/modules/custom-ws-proxy'

/** A free loopback port (the OS picks it; `nuxi dev` cannot listen on port 0 itself). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

interface NuxtDev {
  url: string
  child: ChildProcess
  output: () => string
  stop: () => Promise<void>
}

/** `nuxi _dev` (one process: no forked child to lose) on `rootDir`, ready once the live view state answers. */
async function startNuxtDev(rootDir: string, env: Record<string, string>): Promise<NuxtDev> {
  const port = await freePort()
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env, NO_COLOR: '1', PORT: String(port), HOST: '127.0.0.1', NODE_ENV: 'development' }
  // Nuxt DevTools is disabled when it sees a test run.
  delete childEnv.TEST
  delete childEnv.VITEST
  const child = spawn(process.execPath, [nuxiCli, '_dev'], { cwd: rootDir, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout!.on('data', (chunk) => { output += chunk })
  child.stderr!.on('data', (chunk) => { output += chunk })
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    await Promise.race([exited, new Promise(resolve => setTimeout(resolve, 5000))])
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  }
  const url = `http://127.0.0.1:${port}`
  try {
    await eventually(async () => {
      if (child.exitCode !== null) throw new Error(`nuxi exited (${child.exitCode}):\n${output}`)
      const res = await fetch(`${url}/_ws-proxy/devtools/state`)
      return res.status === 200 ? true : undefined
    }, 90_000, `nuxi dev on ${url}`).catch((error) => {
      throw new Error(`${error.message}\n${output}`)
    })
    return { url, child, output: () => output, stop }
  }
  catch (error) {
    await stop()
    throw error
  }
}

describe.skipIf(!hasChromium())('Nuxt DevTools tab under nuxi dev', () => {
  let upstream: Upstream
  let server: NuxtDev
  let browser: Browser
  let page: Page
  let view: Frame
  let client: TestClient | undefined

  beforeAll(async () => {
    upstream = await startUpstream()
    ;[server, browser] = await Promise.all([
      startNuxtDev(fixtureDir('nuxt-devtools-app'), { NUXT_WS_PROXY_LIVE_TARGET: `${upstream.url}/echo/**` }),
      launchChromium(),
    ])
    const context = await browser.newContext({ viewport: { width: 1280, height: 1100 } })
    await context.addInitScript(() => {
      // DevTools' welcome screen on a first visit would cover the tab; a tall panel keeps every
      // tab in the side bar (a short one moves some into an overflow menu).
      localStorage.setItem('nuxt-devtools-first-visit', 'false')
      localStorage.setItem('nuxt-devtools-frame-state', JSON.stringify({ width: 96, height: 90, top: 0, left: 50, open: false, route: '/', position: 'bottom' }))
    })
    page = await context.newPage()
  }, 150_000)

  afterAll(async () => {
    if (client?.isOpen) client.ws.terminate()
    await browser?.close().catch(() => {})
    await server?.stop()
    await upstream?.close()
  }, 20_000)

  it('has a "WebSocket proxy" tab whose iframe is the live view', async () => {
    await page.goto(`${server.url}/`)
    // The first visit can take a while: Vite optimises DevTools' dependencies and reloads the page.
    await page.waitForFunction(() => !!(window as any).__NUXT_DEVTOOLS_HOST__, null, { timeout: 40_000 })
    // Open DevTools (what Shift + Alt + D does) and wait for its client to connect to the app.
    await page.evaluate(() => (window as any).__NUXT_DEVTOOLS_HOST__.devtools.open())
    await page.waitForFunction(() => {
      try {
        return !!(window as any).__NUXT_DEVTOOLS_HOST__.getIframe().contentWindow.__NUXT_DEVTOOLS_VIEW__
      }
      catch {
        return false
      }
    }, null, { timeout: 30_000 })
    const devtools = page.frames().find(frame => frame.url().includes('/__nuxt_devtools__/client/'))!
    expect(devtools).toBeTruthy()
    // The tab is in DevTools' side bar (a link to its page), under the name the module gave it.
    const tabLink = devtools.locator(`a[href$="${TAB_PATH}"]`).first()
    await tabLink.waitFor({ timeout: 15_000 })
    await tabLink.hover()
    await devtools.getByText('WebSocket proxy', { exact: true }).first().waitFor({ timeout: 5_000 })
    await tabLink.click()
    await page.waitForFunction(
      path => (window as any).__NUXT_DEVTOOLS_HOST__.getIframe().contentWindow.location.pathname.endsWith(path),
      TAB_PATH,
      { timeout: 15_000 },
    )
    // DevTools appends the tab's iframe (src from `devtools:customTabs`) to its own document.
    view = await eventually(async () => page.frames().find(frame => new URL(frame.url()).pathname === '/_ws-proxy/devtools'), 15_000, 'the tab\'s iframe')
    await view.locator(`section.route[data-route="${ROUTE}"]`).waitFor({ timeout: 10_000 })
    expect(await view.textContent(`section.route[data-route="${ROUTE}"]`)).toContain(upstream.url)
    const iframeSrc = await devtools.evaluate(() => [...document.querySelectorAll('iframe')].map(f => f.getAttribute('src')))
    expect(iframeSrc).toContain('/_ws-proxy/devtools')
  }, 60_000)

  it('shows a connection opened by the test, then its close and cause', async () => {
    client = await wsConnect(`${server.url.replace(/^http/, 'ws')}/live/devtools-tab`)
    for (let i = 1; i <= 3; i++) {
      client.send(`tab ${i}`)
      expect((await client.next()).text).toBe(`tab ${i}`)
    }
    const open = await eventually(async () => {
      const row = (await viewRows(view, 'connections')).find(r => r.cells.some(c => c.endsWith('/echo/devtools-tab')))
      return row && row.cells.includes('15 B / 15 B') ? row : undefined
    }, 5_000, 'the connection with 15 B / 15 B in the tab')
    expect(open.route).toBe(ROUTE)
    console.log(`[devtools tab] screenshot ${await saveScreenshot(page, 'nuxt-devtools-tab-open')}`)

    // The upstream ends it this time: cause `upstream`, its code on both legs.
    client.send('close:4000:bye')
    expect((await client.closed).code).toBe(4000)
    const closed = await eventually(async () => {
      const row = (await viewRows(view, 'closes')).find(r => r.id === open.id)
      return row?.cause === 'upstream' ? row : undefined
    }, 5_000, `close of ${open.id} in the tab`)
    expect(closed.cells).toContain('4000 bye')
    console.log(`[devtools tab] screenshot ${await saveScreenshot(page, 'nuxt-devtools-tab-closed')}`)
  }, 30_000)
})
