/**
 * A pool member in its own process, so a test can SIGKILL it (a crashed backend), SIGSTOP it (a
 * frozen one: the kernel still accepts TCP, nothing answers) and start it again on the same port.
 * Forked by `startChildUpstream()` (harness.ts); reports over IPC.
 *
 * - Listens on 127.0.0.1, port `UPSTREAM_PORT` (0: any), and sends `{ type: 'listening', port }`.
 * - Echoes every frame with its type.
 * - IPC `{ type: 'count', id }` is answered `{ type: 'count', id, connections, accepted }`
 *   (open WebSocket connections now, handshakes accepted since start).
 * - Exits when the parent goes away (IPC disconnect) or after 60 s, so a crashed run leaves
 *   nothing behind.
 */
import { WebSocketServer } from 'ws'

const port = Number(process.env.UPSTREAM_PORT ?? 0)
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false })
let accepted = 0

wss.on('connection', (ws) => {
  accepted++
  ws.on('error', () => {})
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
})

wss.on('listening', () => {
  process.send({ type: 'listening', port: wss.address().port })
})
wss.on('error', (error) => {
  process.send({ type: 'error', message: String(error?.message ?? error) })
  process.exit(1)
})

process.on('message', (message) => {
  if (message?.type === 'count') process.send({ type: 'count', id: message.id, connections: wss.clients.size, accepted })
})

process.on('disconnect', () => process.exit(0))
setTimeout(() => process.exit(0), 60_000).unref()
