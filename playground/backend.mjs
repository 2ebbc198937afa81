// The demo backend: a tiny chat server (plain `ws`) that the playground proxies to. Every
// connection joins the room named by its path; messages are broadcast to the room.
import { WebSocketServer } from 'ws'

/** Start the backend on 127.0.0.1 and `port` (0: a free port). Resolves the server. */
export async function startBackend(port = 0) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port })
  await new Promise((resolve, reject) => {
    wss.once('listening', resolve)
    wss.once('error', reject)
  })
  wss.on('connection', (ws, request) => {
    const room = request.url || '/'
    ws.room = room
    ws.on('error', () => {})
    ws.send(JSON.stringify({
      from: 'backend',
      text: `Connected to the backend at ${room} through the proxy (x-forwarded-for: ${request.headers['x-forwarded-for'] ?? 'none'}).`,
    }))
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        ws.send(data, { binary: true })
        return
      }
      const text = data.toString().slice(0, 2000)
      for (const client of wss.clients) {
        if (client.room === room && client.readyState === client.OPEN) {
          client.send(JSON.stringify({ from: 'backend', text: `echo: ${text}`, at: new Date().toISOString() }))
        }
      }
    })
  })
  return wss
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const wss = await startBackend(Number(process.env.BACKEND_PORT) || 8787)
  console.log(`Demo backend on ws://127.0.0.1:${wss.address().port}`)
}
