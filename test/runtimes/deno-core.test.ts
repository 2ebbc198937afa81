/**
 * The core on a bare `Deno.serve` with crossws's own Deno adapter, both lines, with and without
 * `fixDenoAdapter`: real Deno (from npm), real `ws` upstream and client on 127.0.0.1.
 *
 * What it pins down: the proxy reads everything it needs during `upgrade` (Deno closes the
 * request after the 101), client close codes arrive from the socket's own `close` event (the
 * adapter reports `{}`), and subprotocols are answered with the wrapper. Without it, the
 * documented limits of each crossws line are what happens.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { cleanup, rawUpgrade, startUpstream, waitFor, withTimeout, wsConnect } from '../helpers'

const here = fileURLToPath(new URL('.', import.meta.url))
const root = fileURLToPath(new URL('../..', import.meta.url))
const children = new Set<ChildProcess>()

afterEach(() => cleanup())
afterAll(() => {
  for (const child of children) child.kill('SIGKILL')
})

let denoPath: string | undefined
/** The Deno binary from npm (`npx -y deno@2`), resolved once so the test can signal it by pid. */
function deno(): string {
  denoPath ??= execFileSync('npx', ['-y', 'deno@2', 'eval', 'console.log(Deno.execPath())'], { cwd: root, encoding: 'utf8', timeout: 120_000 }).trim()
  return denoPath
}

async function startDenoProxy(line: '0.3' | '0.4', target: string, wrap: boolean): Promise<string> {
  const child = spawn(deno(), ['run', '-A', `${here}deno-core-server.mjs`, line, target, wrap ? 'yes' : 'no'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  })
  children.add(child)
  let output = ''
  const port = await withTimeout(new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk) => {
      output += chunk
      const match = /PORT (\d+)/.exec(output)
      if (match) resolve(match[1]!)
    })
    child.stderr!.on('data', (chunk) => { output += chunk })
    child.once('exit', code => reject(new Error(`deno exited (${code}):\n${output}`)))
  }), 60_000, 'deno proxy start')
  return `ws://127.0.0.1:${port}`
}

describe.each(['0.3', '0.4'] as const)('core on Deno.serve, crossws %s', (line) => {
  it('with fixDenoAdapter: one subprotocol answered (offer written "a,b"), text/binary, close codes both ways, handshake data', async () => {
    const upstream = await startUpstream()
    const proxy = await startDenoProxy(line, upstream.url, true)

    const raw = await rawUpgrade(`${proxy}/room/1`, { 'Sec-WebSocket-Protocol': 'chat.v2,chat.v1' })
    expect(raw.status).toBe(101)
    expect(raw.header('sec-websocket-protocol')).toEqual(['chat.v2'])
    raw.close()

    const client = await wsConnect(`${proxy}/room/1`, { protocols: ['chat.v2', 'chat.v1'] })
    expect(client.protocol).toBe('chat.v2')
    client.send('hello')
    expect(await client.next()).toMatchObject({ text: 'hello', isBinary: false })
    client.send(Buffer.from([0, 1, 2, 255]))
    const binary = await client.next()
    expect(binary.isBinary).toBe(true)
    expect([...binary.data]).toEqual([0, 1, 2, 255])

    const handshake = upstream.handshakes.at(-1)!
    expect(handshake.url).toBe('/room/1')
    expect(handshake.headers['x-client']).toBe('127.0.0.1')
    expect(handshake.headers['x-host']).toBe(new URL(proxy).host)
    expect(handshake.headers['sec-websocket-protocol']).toBe('chat.v2, chat.v1')

    await client.close(4002, 'bye')
    // The first close is the raw handshake's connection, reset above.
    await waitFor(() => upstream.closes.length === 2, { timeout: 5000, label: 'upstream close' })
    expect(upstream.closes[1]).toEqual({ code: 4002, reason: 'bye' })

    const second = await wsConnect(`${proxy}/room/2`)
    second.send('close:4001:done')
    expect(await withTimeout(second.closed, 5000, 'client close')).toMatchObject({ code: 4001, reason: 'done' })
  }, 120_000)

  it('without the wrapper: close codes still carried (the core reads them from the socket)', async () => {
    const upstream = await startUpstream()
    const proxy = await startDenoProxy(line, upstream.url, false)

    const client = await wsConnect(`${proxy}/plain`)
    client.send('ping')
    expect((await client.next()).text).toBe('ping')
    await client.close(4003, 'later')
    await waitFor(() => upstream.closes.length === 1, { timeout: 5000, label: 'upstream close' })
    expect(upstream.closes[0]).toEqual({ code: 4003, reason: 'later' })
  }, 120_000)

  if (line === '0.3') {
    it('without the wrapper, crossws 0.3 answers no subprotocol (documented limitation)', async () => {
      const upstream = await startUpstream()
      const proxy = await startDenoProxy(line, upstream.url, false)
      const raw = await rawUpgrade(`${proxy}/x`, { 'Sec-WebSocket-Protocol': 'chat.v2, chat.v1' })
      expect(raw.status).toBe(101)
      expect(raw.header('sec-websocket-protocol')).toEqual([])
    }, 120_000)
  }
  else {
    it('without the wrapper, crossws 0.4 answers browser-style offers and fails "a,b" offers with 500 (documented limitation)', async () => {
      const upstream = await startUpstream()
      const proxy = await startDenoProxy(line, upstream.url, false)
      const spaced = await rawUpgrade(`${proxy}/x`, { 'Sec-WebSocket-Protocol': 'chat.v2, chat.v1' })
      expect(spaced.status).toBe(101)
      expect(spaced.header('sec-websocket-protocol')).toEqual(['chat.v2'])
      await expect(wsConnect(`${proxy}/x`, { protocols: ['chat.v2', 'chat.v1'] })).rejects.toThrow(/500/)
    }, 120_000)
  }
})
