import { WebSocketServer } from 'ws'
const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.argv[2] || 0) })
wss.on('listening', () => console.log('UP', wss.address().port))
wss.on('connection', (ws, req) => { console.log('conn', req.url, JSON.stringify(req.headers)); ws.on('message', (d, b) => { if (String(d) === 'close') ws.close(4001, 'upbye'); else ws.send(d, { binary: b }) }); ws.on('close', (c, r) => console.log('up saw close', c, String(r))) })
