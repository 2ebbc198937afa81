// Load generator (its own process, forked by run.mjs), the same for every target.
//   node bench/client.mjs <workload> <ws:// url> <params json>
// It drives the sequence and asks run.mjs to snapshot the proxy at named marks:
// process.send({ type: 'mark', id, name, gc?, sampleMs?, waitUpstream? }) resolves on
// { type: 'ack', id }. With several load generators (scale), a mark is a barrier: run.mjs
// snapshots once all of them reached it and then acknowledges every one.
// Ends with process.send({ type: 'result', ... }). Every loop is bounded in count and time.
import { randomBytes } from 'node:crypto'
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

// The upload workload's payload: this 64 KiB block repeated (the same definition as in
// upstream.mjs, which checks every received byte against it).
const UPLOAD_PATTERN = Buffer.alloc(64 * 1024)
for (let i = 0; i < UPLOAD_PATTERN.length; i++) UPLOAD_PATTERN[i] = (i * 31 + 7) & 0xFF

const now = () => performance.now()
const sleep = ms => new Promise(r => setTimeout(r, ms))

function connect(options = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options })
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

/** A client-to-server frame header (RFC 6455 §5.2): FIN, `opcode`, MASK and the masking key. */
function maskedFrameHeader(opcode, length, key) {
  const extra = length < 126 ? 0 : length < 65536 ? 2 : 8
  const header = Buffer.alloc(2 + extra + 4)
  header[0] = 0x80 | opcode
  if (extra === 0) header[1] = 0x80 | length
  else if (extra === 2) {
    header[1] = 0x80 | 126
    header.writeUInt16BE(length, 2)
  }
  else {
    header[1] = 0x80 | 127
    header.writeBigUInt64BE(BigInt(length), 2)
  }
  key.copy(header, 2 + extra)
  return header
}

/**
 * `clients` connections each upload ONE binary frame of `frameBytes`, written by hand on the
 * client's TCP socket: the header (FIN, binary, MASK, 64-bit length, a random masking key), then
 * the payload (UPLOAD_PATTERN repeated) masked with that key, in `sliceBytes` slices paced so that
 * the last one is due after `durationMs`, never past the socket's flow control (after a write()
 * that returns false, that connection waits for 'drain'). The upstream answers each complete
 * message with "ok <bytes>" once it checked every byte. Bounded by `timeoutMs`: connections
 * without an answer by then count as failed. run.mjs samples the proxy's RSS between the marks.
 */
async function upload() {
  if (p.sliceBytes % UPLOAD_PATTERN.length !== 0) throw new TypeError('upload: sliceBytes must be a multiple of 64 KiB')
  const conns = []
  // autoPong off: ws would write a pong in the middle of the hand-written frame. (The relays'
  // heartbeats ping every 30 s or more: none is due during an upload.)
  for (let i = 0; i < p.clients; i++) conns.push(await connect({ autoPong: false }))
  const totalSlices = Math.ceil(p.frameBytes / p.sliceBytes)
  const states = conns.map((ws) => {
    const key = randomBytes(4)
    // Slices start at multiples of 64 KiB, so every full slice masks to the same bytes.
    const masked = Buffer.alloc(p.sliceBytes)
    for (let i = 0; i < masked.length; i++) masked[i] = UPLOAD_PATTERN[i % UPLOAD_PATTERN.length] ^ key[i & 3]
    return { ws, socket: ws._socket, masked, header: maskedFrameHeader(0x2, p.frameBytes, key), slices: 0, waiting: false, outcome: undefined, writtenMs: Number.NaN }
  })
  await mark('start', { sample: 'start' })
  const t0 = now()
  const outcomes = states.map(s => new Promise((resolve) => {
    const settle = (ok, reply) => {
      if (s.outcome) return
      s.outcome = { ok, reply, ms: now() - t0 }
      resolve()
    }
    s.ws.on('message', data => settle(String(data) === `ok ${p.frameBytes}`, String(data)))
    s.ws.on('close', (code, reason) => settle(false, `closed ${code} ${String(reason)}`.trim()))
    s.ws.on('error', err => settle(false, `error ${err.message}`))
  }))
  const tick = () => {
    const due = Math.min(totalSlices, Math.ceil((now() - t0) / p.durationMs * totalSlices))
    for (const s of states) {
      while (!s.waiting && !s.outcome && s.slices < due && !s.socket.destroyed) {
        if (s.slices === 0) s.socket.write(s.header)
        const length = Math.min(p.sliceBytes, p.frameBytes - s.slices * p.sliceBytes)
        const flowing = s.socket.write(length === p.sliceBytes ? s.masked : s.masked.subarray(0, length))
        if (++s.slices === totalSlices) s.writtenMs = now() - t0
        if (!flowing) {
          s.waiting = true
          s.socket.once('drain', () => {
            s.waiting = false
          })
        }
      }
    }
  }
  const ticker = setInterval(tick, p.tickMs)
  tick()
  let timer
  await Promise.race([Promise.all(outcomes), new Promise((resolve) => {
    timer = setTimeout(resolve, p.timeoutMs)
  })])
  clearInterval(ticker)
  clearTimeout(timer)
  const elapsedMs = now() - t0
  await mark('end', { sample: 'stop' })
  for (const s of states) s.ws.terminate()
  const failures = {}
  for (const s of states) {
    if (s.outcome?.ok) continue
    const why = s.outcome?.reply ?? `no answer after ${p.timeoutMs / 1000} s (${s.slices}/${totalSlices} slices written)`
    failures[why] = (failures[why] ?? 0) + 1
  }
  const done = states.filter(s => s.outcome?.ok)
  return {
    clients: states.length,
    completed: done.length,
    writtenMs: Math.max(...states.map(s => s.writtenMs)), // NaN unless every frame was written
    lastAckMs: done.length ? Math.max(...done.map(s => s.outcome.ms)) : Number.NaN,
    elapsedMs,
    failures,
  }
}

/**
 * The scale workload, this process's share of it: `connections` of the `total` (its first one is
 * number `offset`). Opens them in batches of `batch` (each batch waits for its handshakes), then
 * every connection sends one `size`-byte text message every `intervalMs` for `steadyMs`, connection
 * g (of all `total`) at g/total of the interval, so the sends of all processes are spread evenly.
 * Returns every round-trip time (µs, rounded).
 */
async function scale() {
  const payload = 'x'.repeat(p.size)
  for (let i = 0; i < p.warmupConnections; i++) {
    const ws = await connect()
    await roundTrip(ws, payload)
    ws.close()
  }
  await sleep(p.settleMs)
  await mark('before', { gc: true })
  const conns = []
  let closedEarly = 0
  const onClose = () => {
    closedEarly++
  }
  for (let opened = 0; opened < p.connections; opened += p.batch) {
    const n = Math.min(p.batch, p.connections - opened)
    const batch = await Promise.allSettled(Array.from({ length: n }, () => connect()))
    const failed = batch.filter(r => r.status === 'rejected')
    for (const r of batch) {
      if (r.status !== 'fulfilled') continue
      r.value.on('error', () => {})
      r.value.once('close', onClose)
      conns.push(r.value)
    }
    if (failed.length) {
      for (const ws of conns) ws.terminate()
      throw new Error(`${failed.length} of a batch of ${n} dials failed, ${conns.length} open (${failed[0].reason?.message ?? failed[0].reason})`)
    }
  }
  await mark('opened', { waitUpstream: true })
  await sleep(p.settleMs)
  await mark('settled', { gc: true })

  await mark('steady-start')
  const rounds = Math.round(p.steadyMs / p.intervalMs)
  const rtts = new Float64Array(conns.length * rounds)
  let sent = 0
  let received = 0
  const handlers = conns.map((ws) => {
    const sentAt = [] // FIFO: one entry unless an echo takes longer than the interval
    const h = () => {
      const t = sentAt.shift()
      if (t !== undefined && received < rtts.length) rtts[received++] = (now() - t) * 1000
    }
    ws.on('message', h)
    return sentAt
  })
  await new Promise((resolve) => {
    const t0 = now()
    let k = 0 // round
    let j = 0 // next connection of the round
    const due = (jj, kk) => t0 + ((p.offset + jj) / p.total + kk) * p.intervalMs
    const ticker = setInterval(() => {
      const t = now()
      while (k < rounds && due(j, k) <= t) {
        const ws = conns[j]
        if (ws.readyState === 1) {
          handlers[j].push(now())
          ws.send(payload)
          sent++
        }
        if (++j === conns.length) {
          j = 0
          k++
        }
      }
      if (k === rounds) {
        clearInterval(ticker)
        const deadline = now() + p.drainMs
        const drain = setInterval(() => {
          if (received >= sent || now() > deadline) {
            clearInterval(drain)
            resolve()
          }
        }, 5)
      }
    }, 5)
  })
  await mark('steady-end')
  await mark('after', { gc: true })
  for (const ws of conns) {
    ws.off('close', onClose)
    ws.terminate()
  }
  return { connections: conns.length, sent, received, closedEarly, rtts: Array.from(rtts.subarray(0, received), x => Math.round(x)) }
}

const workloads = { latency, small: throughput, large: throughput, idle, slow, upload, scale }

try {
  const result = await workloads[workload]()
  process.send({ type: 'result', ...result }, () => process.exit(0))
}
catch (error) {
  process.send({ type: 'error', message: String(error?.message ?? error) }, () => process.exit(1))
}
