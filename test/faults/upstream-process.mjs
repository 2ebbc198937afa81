/**
 * An upstream in its own process, so a test can SIGKILL or SIGSTOP it like a crashed or frozen
 * backend. Forked by `startUpstreamProcess()` (harness.ts); reports over IPC.
 *
 * - Listens on 127.0.0.1 port 0 and sends `{ type: 'listening', port }` to the parent.
 * - Echoes every frame with its type. The text frame `stream` starts a bounded stream of
 *   1 KiB binary frames to that connection (sequence number in the first 4 bytes).
 * - IPC `{ type: 'count', id }` is answered `{ type: 'count', id, connections }`.
 * - Exits when the parent goes away (IPC disconnect) or after `UPSTREAM_MAX_LIFETIME_MS`
 *   (default 60 s), so a crashed test run never leaves it behind.
 */
import { WebSocketServer } from 'ws'

const MAX_LIFETIME_MS = Number(process.env.UPSTREAM_MAX_LIFETIME_MS ?? 60_000)
/** Bounds of one stream: at most this many frames, sent while less than HIGH_WATER is queued. */
const STREAM_MAX_FRAMES = 200_000
const STREAM_FRAMES_PER_TICK = 16
const STREAM_TICK_MS = 5
const HIGH_WATER = 256 * 1024

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })

function startStream(ws) {
  let sent = 0
  const timer = setInterval(() => {
    if (ws.readyState !== ws.OPEN || sent >= STREAM_MAX_FRAMES) {
      clearInterval(timer)
      return
    }
    for (let i = 0; i < STREAM_FRAMES_PER_TICK && ws.bufferedAmount < HIGH_WATER; i++) {
      const frame = Buffer.alloc(1024, sent & 0xFF)
      frame.writeUInt32BE(sent, 0)
      ws.send(frame, { binary: true })
      sent++
    }
  }, STREAM_TICK_MS)
  ws.once('close', () => clearInterval(timer))
}

wss.on('connection', (ws) => {
  ws.on('error', () => {})
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.toString() === 'stream') startStream(ws)
    else ws.send(data, { binary: isBinary })
  })
})

wss.on('listening', () => {
  process.send({ type: 'listening', port: wss.address().port })
})

process.on('message', (message) => {
  if (message?.type === 'count') process.send({ type: 'count', id: message.id, connections: wss.clients.size })
})

process.on('disconnect', () => process.exit(0))
setTimeout(() => process.exit(0), MAX_LIFETIME_MS).unref()
