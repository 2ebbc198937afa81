// Load generator (its own process, forked by run.mjs), the same for every target.
//   node bench/client.mjs <workload> <ws:// url> <params json>
// It drives the sequence and asks run.mjs to snapshot the proxy at named marks:
// process.send({ type: 'mark', id, name, gc?, sampleMs? }) resolves on { type: 'ack', id }.
// Ends with process.send({ type: 'result', ... }). Every loop is bounded in count and time.
import { WebSocket } from 'ws'

const [workload, url, paramsJson] = process.argv.slice(2)
const p = JSON.parse(paramsJson)

const pending = new Map()
let markSeq = 0
process.on('message', (m) => {
  if (m?.type === 'ack') {
    pending.get(m.id)?.()
    pending.delete(m.id)
  }
})
process.on('disconnect', () => process.exit(0))

function mark(name, extra = {}) {
  return new Promise((resolve) => {
    const id = ++markSeq
    pending.set(id, resolve)
    process.send({ type: 'mark', id, name, ...extra })
  })
}

const now = () => performance.now()
const sleep = ms => new Promise(r => setTimeout(r, ms))

function connect() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false })
    const timer = setTimeout(() => {
      ws.terminate()
      reject(new Error('connect timeout'))
    }, 10_000)
    ws.once('open', () => {
      clearTimeout(timer)
      resolve(ws)
    })
    ws.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}

function roundTrip(ws, data) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('echo timeout')), 10_000)
    ws.once('message', () => {
      clearTimeout(timer)
      resolve()
    })
    ws.send(data)
  })
}

/** One connection, one message in flight; returns round-trip times in µs. */
function pingPong(ws, payload, maxCount, durationMs) {
  return new Promise((resolve, reject) => {
    const rtts = new Float64Array(maxCount)
    let n = 0
    const deadline = now() + durationMs
    const guard = setTimeout(() => reject(new Error('ping-pong stalled')), durationMs + 10_000)
    let sentAt = now()
    const onMessage = () => {
      const t = now()
      rtts[n++] = (t - sentAt) * 1000
      if (n < maxCount && t < deadline) {
        sentAt = now()
        ws.send(payload)
        return
      }
      ws.off('message', onMessage)
      clearTimeout(guard)
      resolve(rtts.subarray(0, n))
    }
    ws.on('message', onMessage)
    ws.send(payload)
  })
}

/**
 * Many connections, `window` messages in flight on each; each reply sends the next message
 * until the time or count budget is spent, then the phase drains (0 in flight) and resolves.
 */
function saturate(conns, payload, window, maxCount, durationMs) {
  return new Promise((resolve, reject) => {
    let running = true
    let received = 0
    let sent = 0
    let inflight = 0
    const t0 = now()
    const stop = setTimeout(() => {
      running = false
    }, durationMs)
    const guard = setTimeout(() => {
      cleanup()
      reject(new Error(`drain stalled (${inflight} in flight)`))
    }, durationMs + 15_000)
    const handlers = new Map()
    const cleanup = () => {
      clearTimeout(stop)
      clearTimeout(guard)
      for (const [ws, h] of handlers) ws.off('message', h)
    }
    for (const ws of conns) {
      const h = () => {
        received++
        inflight--
        if (running && sent < maxCount) {
          sent++
          inflight++
          ws.send(payload)
        }
        else if (inflight === 0) {
          const elapsedMs = now() - t0
          cleanup()
          resolve({ received, elapsedMs })
        }
      }
      handlers.set(ws, h)
      ws.on('message', h)
    }
    for (const ws of conns) {
      for (let i = 0; i < window && sent < maxCount; i++) {
        sent++
        inflight++
        ws.send(payload)
      }
    }
  })
}

function quantile(sorted, q) {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

async function latency() {
  const ws = await connect()
  const payload = 'x'.repeat(64)
  await pingPong(ws, payload, p.warmupCount, p.warmupMs)
  await mark('start')
  const rtts = await pingPong(ws, payload, p.maxCount, p.durationMs)
  await mark('end')
  const sorted = Float64Array.from(rtts).sort()
  ws.terminate()
  return { messages: rtts.length, p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99) }
}

async function throughput() {
  const conns = []
  for (let i = 0; i < p.connections; i++) conns.push(await connect())
  const payload = p.size === 64 ? 'x'.repeat(64) : Buffer.alloc(p.size, 0x62)
  await saturate(conns, payload, p.window, p.maxCount, p.warmupMs)
  await mark('start')
  const { received, elapsedMs } = await saturate(conns, payload, p.window, p.maxCount, p.durationMs)
  await mark('end')
  for (const ws of conns) ws.terminate()
  return { messages: received, elapsedMs, msgPerSec: received / (elapsedMs / 1000) }
}

async function idle() {
  const ping = 'x'.repeat(64)
  // Warm the code paths, then measure the settled baseline.
  for (let i = 0; i < p.warmupConnections; i++) {
    const ws = await connect()
    await roundTrip(ws, ping)
    ws.close()
  }
  await sleep(p.settleMs)
  await mark('before', { gc: true })
  const conns = []
  for (let opened = 0; opened < p.connections; opened += p.batch) {
    const n = Math.min(p.batch, p.connections - opened)
    // A round trip on each proves the upstream leg exists too.
    const batch = await Promise.all(Array.from({ length: n }, async () => {
      const ws = await connect()
      await roundTrip(ws, ping)
      return ws
    }))
    conns.push(...batch)
  }
  await sleep(p.settleMs)
  await mark('after', { gc: true })
  for (const ws of conns) ws.terminate()
  return { connections: conns.length }
}

async function slow() {
  const ws = new WebSocket(url, { perMessageDeflate: false })
  let received = 0
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no pushed message')), 10_000)
    ws.on('message', () => {
      if (received++ === 0) {
        clearTimeout(timer)
        ws._socket.pause() // stop reading: from now on only the kernel buffers fill
        resolve()
      }
    })
    ws.once('error', reject)
  })
  await mark('paused', { sampleMs: p.sampleMs })
  const result = { received }
  ws.terminate()
  return result
}

const workloads = { latency, small: throughput, large: throughput, idle, slow }

try {
  const result = await workloads[workload]()
  process.send({ type: 'result', ...result }, () => process.exit(0))
}
catch (error) {
  process.send({ type: 'error', message: String(error?.message ?? error) }, () => process.exit(1))
}
