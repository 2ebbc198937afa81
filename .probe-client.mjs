import WebSocket from 'ws'
const ws = new WebSocket(process.argv[2])
ws.on('open', () => { console.log('open'); ws.send('hello'); ws.send(Buffer.from([1,2,3])) })
ws.on('message', (d, b) => { console.log('msg', b, d.toString()); })
ws.on('unexpected-response', (req, res) => { console.log('status', res.statusCode); res.on('data', d => console.log(String(d))); })
ws.on('error', e => console.log('err', e.message))
ws.on('close', (c, r) => console.log('close', c, String(r)))
setTimeout(() => { ws.close(1000, 'bye'); setTimeout(() => process.exit(0), 500) }, 1500)
