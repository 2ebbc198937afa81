import { connect } from 'node:net'
const [url, mode] = process.argv.slice(2)
const { hostname, port, host } = new URL(url)
const req = ['GET /live/reset HTTP/1.1', `Host: ${host}`, 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', '', ''].join('\r\n')
const s = connect(Number(port), hostname)
s.on('error', () => {})
s.on('connect', () => {
  if (mode === 'after-request') { s.write(req); s.resetAndDestroy() }
  else if (mode === 'partial') { s.write(req.slice(0, 40)); setTimeout(() => s.resetAndDestroy(), 100) }
  else if (mode === 'after-101') { s.write(req); s.once('data', (d) => { console.log('got', JSON.stringify(String(d).slice(0, 40))); s.resetAndDestroy() }) }
  else if (mode === 'request-then-wait') { s.write(req); setTimeout(() => s.resetAndDestroy(), Number(process.argv[4] || 5)) }
})
setTimeout(() => process.exit(0), 1000)
