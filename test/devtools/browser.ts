/**
 * Real Chromium for the live view tests: Debian's `chromium` package (`/usr/bin/chromium`, or
 * `CHROMIUM_PATH`), driven by `playwright-core` (which downloads no browser of its own).
 *
 * Without Chromium the browser tests are skipped with a loud warning, except under CI
 * (`process.env.CI`), where that is an error: `.ci/run` installs it.
 */
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Frame, type Page } from 'playwright-core'

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium'

/** Where screenshots go (`test/artifacts/`, gitignored; created when the first is taken). */
export const ARTIFACTS_DIR = fileURLToPath(new URL('../artifacts/', import.meta.url))

/**
 * Whether Chromium is here. Missing under CI: throws (the test file fails with the remedy).
 * Missing locally: `false`, after a warning that cannot be overlooked.
 */
export function hasChromium(): boolean {
  if (existsSync(CHROMIUM_PATH)) return true
  const message = `Chromium not found at ${CHROMIUM_PATH}: install Debian's package (apt-get update && apt-get install -y chromium) or set CHROMIUM_PATH.`
  if (process.env.CI) throw new Error(`[browser tests] ${message} CI must run the browser tests (.ci/run installs it).`)
  const bar = '!'.repeat(100)
  console.warn(`\n${bar}\n[browser tests] SKIPPED: ${message}\n${bar}\n`)
  return false
}

/** Start headless Chromium (no sandbox: CI runs as root). Close it with `browser.close()`. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: ['--no-sandbox'], timeout: 30_000 })
}

/** Save a screenshot of `page` as `test/artifacts/<name>.png`; resolves the file's path. */
export async function saveScreenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS_DIR, { recursive: true })
  const path = `${ARTIFACTS_DIR}${name}.png`
  await page.screenshot({ path, fullPage: true })
  return path
}

/** One row of the live view's tables, as rendered (`data-*` attributes and cell texts). */
export interface ViewRow {
  id: string
  route: string
  cause?: string
  cells: string[]
}

/** Rows of the live view's `#connections` or `#closes` table. */
export function viewRows(frame: Frame | Page, table: 'connections' | 'closes'): Promise<ViewRow[]> {
  return frame.evaluate((id) => {
    const rows = [...document.querySelectorAll(`#${id} tbody tr[data-id]`)]
    return rows.map(row => ({
      id: row.getAttribute('data-id')!,
      route: row.getAttribute('data-route')!,
      cause: row.getAttribute('data-cause') ?? undefined,
      cells: [...row.querySelectorAll('td')].map(td => td.textContent ?? ''),
    }))
  }, table)
}

/** Poll `check` (async) every 100 ms until it returns a value; rejects after `timeout` ms saying what it last saw. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeout: number, label: string): Promise<T> {
  const deadline = Date.now() + timeout
  let last: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined) return value
    }
    catch (error) {
      last = error
    }
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeout} ms waiting for ${label}${last ? ` (last error: ${String(last)})` : ''}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}
