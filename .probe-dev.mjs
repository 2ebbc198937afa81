import { spawn } from 'node:child_process'
import { connect } from 'node:net'
import WebSocket from 'ws'
const [dir, upPort] = process.argv.slice(2)
const child = spawn(process.execPath, ['node_modules/nitropack/dist/cli/index.mjs', 'dev', '--dir', dir, '--port', '0', '--host', '127.0.0.1'], { env: { ...process.env, NODE_ENV: '', NITRO_WS_PROXY_LIVE_TARGET: `ws://127.0.0.1:${upPort}/echo/**` }, stdio: ['ignore', 'pipe', 'pipe'] })
let out = ''; child.stdout.on('data', d => out += d); child.stderr.on('data', d => out += d)
let exited = null; child.on('exit', (c, s) => { exited = `${c}/${s}` })
const sleep = ms => new Promise(r => setTimeout(r, ms))
let url
for (let i = 0; i < 300 && !url; i++) { await sleep(100); if (/built in/.test(out)) url = /Local:\s+(http:\/\/\S+?)\/?\s/.exec(out)?.[1] }
console.log('url', url)
const { hostname, port, host } = new URL(url)
const req = ['GET /live/reset HTTP/1.1', `Host: ${host}`, 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', '', ''].join('\r\n')
function reset(mode) {
  return new Promise((resolve) => {
    const s = connect(Number(port), hostname); s.on('error', () => {}); s.on('close', () => setTimeout(resolve, 300))
    s.on('connect', () => {
      if (mode === 'after-request') { s.write(req, () => s.resetAndDestroy()) }
      else if (mode === 'partial') { s.write(req.slice(0, 40), () => setTimeout(() => s.resetAndDestroy(), 50)) }
      else if (mode === 'after-101') { s.write(req); s.once('data', () => s.resetAndDestroy()) }
    })
  })
}
for (const mode of (process.env.MODES || 'partial,after-request,after-101').split(',')) {
  await reset(mode); await sleep(500)
  console.log(mode, 'exited:', exited)
  if (exited) break
}
if (!exited) {
  const ws = new WebSocket(`ws://${host}/live/final`)
  const r = await new Promise(res => { ws.on('open', () => ws.send('ping')); ws.on('message', d => res('echo ' + d)); ws.on('error', e => res('err ' + e.message)); setTimeout(() => res('timeout'), 5000) })
  console.log('final', r); ws.terminate()
}
console.log(out.split('\n').filter(l => /Error|ECONN|EPIPE|throw|at /.test(l)).slice(0, 12).join('\n'))
child.kill('SIGKILL')
