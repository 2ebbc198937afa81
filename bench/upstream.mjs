// Upstream WebSocket server of the benchmark (its own process, forked by run.mjs).
//   node bench/upstream.mjs echo   echoes every message back, same frame type
//   node bench/upstream.mjs push   pushes 64 KiB binary messages to every client as fast as
//                                  its own socket drains (never more than PUSH_HWM queued, so
//                                  this process stays small: the proxy's memory is measured)
//   node bench/upstream.mjs ack    answers every message with one short text, "ok <bytes>" (or
//                                  "bad <bytes> at <offset>" when a binary message is not the
//                                  upload pattern: bench/client.mjs's UPLOAD_PATTERN repeated).
//                                  Messages up to ws's default maxPayload (100 MiB) are accepted.
// Reports { type: 'ready', port } over IPC; answers { cmd: 'stats', id }.
import { WebSocketServer } from 'ws'

const mode = process.argv[2] ?? 'echo'
const PUSH_CHUNK = Buffer.alloc(64 * 1024, 0x61)
const PUSH_HWM = 1024 * 1024
// The upload workload's payload: this 64 KiB block repeated (the same definition as in client.mjs).
const UPLOAD_PATTERN = Buffer.alloc(64 * 1024)
for (let i = 0; i < UPLOAD_PATTERN.length; i++) UPLOAD_PATTERN[i] = (i * 31 + 7) & 0xFF

let sentBytes = 0
let sentMessages = 0
let receivedBytes = 0
let receivedMessages = 0

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })

wss.on('connection', (ws) => {
  ws.on('error', () => {})
  if (mode === 'push') {
    const pump = () => {
      // Bounded: stops as soon as PUSH_HWM bytes are queued, resumes on the socket's 'drain'.
      while (ws.readyState === 1 && ws.bufferedAmount < PUSH_HWM) {
        ws.send(PUSH_CHUNK)
        sentBytes += PUSH_CHUNK.length
        sentMessages++
      }
      if (ws.readyState === 1) ws._socket.once('drain', pump)
    }
    pump()
    return
  }
  if (mode === 'ack') {
    ws.on('message', (data, isBinary) => {
      receivedBytes += data.length
      receivedMessages++
      const bad = isBinary ? firstMismatch(data) : -1
      ws.send(bad < 0 ? `ok ${data.length}` : `bad ${data.length} at ${bad}`)
    })
    return
  }
  ws.on('message', (data, isBinary) => {
    ws.send(data, { binary: isBinary })
  })
})

/** Offset of the first 64 KiB block that differs from the pattern, -1 if none (memcmp speed). */
function firstMismatch(data) {
  const n = UPLOAD_PATTERN.length
  for (let o = 0; o < data.length; o += n) {
    const block = data.subarray(o, o + n)
    if (!block.equals(UPLOAD_PATTERN.subarray(0, block.length))) return o
  }
  return -1
}

wss.on('listening', () => {
  process.send({ type: 'ready', port: wss.address().port })
})

process.on('message', (m) => {
  if (m?.cmd === 'stats') process.send({ id: m.id, sentBytes, sentMessages, receivedBytes, receivedMessages, clients: wss.clients.size })
})
process.on('disconnect', () => process.exit(0))
