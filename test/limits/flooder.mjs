/**
 * A client that floods, in its own process (so its sending does not run on the event loop that
 * times the well-behaved client). Forked by rates.test.ts with argv: url, durationMs, messages
 * per connection, message size, pause (ms). Until `durationMs` has passed it opens a connection,
 * sends `messages` binary messages at once, waits for the proxy to close it, and pauses; then it reports
 * `{ type: 'done', connections, codes }` over IPC and exits.
 */
import { WebSocket } from 'ws'

const [url, durationArg, messagesArg, sizeArg, pauseArg] = process.argv.slice(2)
const duration = Number(durationArg)
const messages = Number(messagesArg)
const payload = Buffer.alloc(Number(sizeArg), 0x61)
const pause = Number(pauseArg ?? 0)
const codes = {}
let connections = 0
const started = Date.now()

function once() {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { handshakeTimeout: 2_000 })
    const timer = setTimeout(() => ws.terminate(), 3_000)
    ws.on('error', () => {})
    ws.on('open', () => {
      connections++
      for (let i = 0; i < messages && ws.readyState === WebSocket.OPEN; i++) ws.send(payload, { binary: true })
    })
    ws.on('close', (code) => {
      clearTimeout(timer)
      codes[code] = (codes[code] ?? 0) + 1
      resolve()
    })
  })
}

process.send({ type: 'ready' })
while (Date.now() - started < duration) {
  await once()
  if (pause > 0) await new Promise(resolve => setTimeout(resolve, pause))
}
process.send({ type: 'done', connections, codes })
setTimeout(() => process.exit(0), 50)
process.on('disconnect', () => process.exit(0))
