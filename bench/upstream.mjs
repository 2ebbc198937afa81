// Upstream WebSocket server of the benchmark (its own process, forked by run.mjs).
//   node bench/upstream.mjs echo   echoes every message back, same frame type
//   node bench/upstream.mjs push   pushes 64 KiB binary messages to every client as fast as
//                                  its own socket drains (never more than PUSH_HWM queued, so
//                                  this process stays small: the proxy's memory is measured)
// Reports { type: 'ready', port } over IPC; answers { cmd: 'stats', id }.
import { WebSocketServer } from 'ws'

const mode = process.argv[2] ?? 'echo'
const PUSH_CHUNK = Buffer.alloc(64 * 1024, 0x61)
const PUSH_HWM = 1024 * 1024

let sentBytes = 0
let sentMessages = 0

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
  ws.on('message', (data, isBinary) => {
    ws.send(data, { binary: isBinary })
  })
})

wss.on('listening', () => {
  process.send({ type: 'ready', port: wss.address().port })
})

process.on('message', (m) => {
  if (m?.cmd === 'stats') process.send({ id: m.id, sentBytes, sentMessages, clients: wss.clients.size })
})
process.on('disconnect', () => process.exit(0))
