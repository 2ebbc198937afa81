/**
 * The clients of the drift test, in their own process (so the proxy's process runs only the
 * proxy). Forked by drift.test.ts with argv: url, cycles, concurrency. Cycle `i` is of kind
 * `KINDS[i % 5]`, as user `user<i % 7>`:
 * - `close` / `reset`: open, then close normally / reset the TCP connection (RST) at once;
 * - `echo-close` / `echo-reset`: the same after one echo;
 * - `abort-upgrade`: write the upgrade request by hand and reset right after.
 * A 429 (a slot of a reset client still held for a moment) is retried after 5 ms and counted.
 * Reports `{ type: 'done', ms, cpuMs, refused, byKind }` or `{ type: 'failed', error }` over IPC.
 */
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { WebSocket } from 'ws'

const [url, cyclesArg, concurrencyArg] = process.argv.slice(2)
const CYCLES = Number(cyclesArg)
const CONCURRENCY = Number(concurrencyArg)
const KINDS = ['close', 'reset', 'echo-close', 'echo-reset', 'abort-upgrade']
const byKind = Object.fromEntries(KINDS.map(kind => [kind, 0]))
let refused = 0

function bounded(promise, ms, label) {
  let timer
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${label}`)), ms) }),
  ]).finally(() => clearTimeout(timer))
}

function open(headers) {
  const ws = new WebSocket(url, { headers, handshakeTimeout: 5_000 })
  ws.on('error', () => {})
  return bounded(new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws))
    ws.once('unexpected-response', (_req, res) => {
      res.resume()
      ws.terminate()
      if (res.statusCode === 429) resolve(429)
      else reject(new Error(`upgrade answered ${res.statusCode}`))
    })
    ws.once('close', code => reject(new Error(`closed (${code}) before open`)))
  }), 6_000, 'open').catch((error) => {
    ws.terminate()
    throw error
  })
}

async function cycle(kind, i) {
  byKind[kind]++
  const user = `user${i % 7}`
  if (kind === 'abort-upgrade') {
    const target = new URL(url)
    const socket = connect(Number(target.port), target.hostname)
    socket.on('error', () => {})
    const closed = new Promise(resolve => socket.once('close', resolve))
    socket.once('connect', () => {
      socket.write(`GET / HTTP/1.1\r\nHost: ${target.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nx-user: ${user}\r\n\r\n`, () => socket.resetAndDestroy())
    })
    try { await bounded(closed, 3_000, `aborted upgrade #${i} closed`) }
    finally { socket.destroy() }
    return
  }
  let ws = await open({ 'x-user': user })
  for (let tries = 0; ws === 429 && tries < 50; tries++) {
    refused++
    await new Promise(resolve => setTimeout(resolve, 5))
    ws = await open({ 'x-user': user })
  }
  if (ws === 429) throw new Error(`cycle ${i}: refused 50 times`)
  const closed = new Promise(resolve => ws.once('close', resolve))
  try {
    if (kind === 'echo-close' || kind === 'echo-reset') {
      const text = `cycle ${i}`
      const echoed = bounded(new Promise(resolve => ws.once('message', data => resolve(String(data)))), 3_000, `echo of ${text}`)
      ws.send(text)
      const got = await echoed
      if (got !== text) throw new Error(`cycle ${i}: echo ${JSON.stringify(got)}`)
    }
    if (kind === 'close' || kind === 'echo-close') ws.close(1000)
    else ws._socket.resetAndDestroy()
    await bounded(closed, 3_000, `close of cycle ${i} (${kind})`)
  }
  finally {
    ws.terminate()
  }
}

process.on('disconnect', () => process.exit(0))
const started = Date.now()
let next = 0
async function worker() {
  while (next < CYCLES) {
    const i = next++
    await cycle(KINDS[i % KINDS.length], i)
  }
}
try {
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  const cpu = process.cpuUsage()
  process.send({ type: 'done', ms: Date.now() - started, cpuMs: Math.round((cpu.user + cpu.system) / 1000), refused, byKind })
}
catch (error) {
  process.send({ type: 'failed', error: String(error?.stack ?? error) })
}
setTimeout(() => process.exit(0), 50)
