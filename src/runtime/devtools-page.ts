/**
 * `GET /_ws-proxy/devtools` (development only): one self-contained HTML page (inline CSS and JS,
 * no external asset, no framework) that polls `./devtools/state` every second and shows each
 * proxied route, a messages/s and bytes/s graph of the last 60 s, the open connections and the
 * recent closes with their cause. The Nuxt DevTools tab shows it in an iframe.
 */
import { defineEventHandler, setResponseHeader } from '#nitro-ws-proxy/h3'

/** The page's Content-Security-Policy: only its own inline code, only same-origin requests and frames. */
export const DEVTOOLS_PAGE_CSP = [
  `default-src 'none'`,
  `script-src 'unsafe-inline'`,
  `style-src 'unsafe-inline'`,
  `connect-src 'self'`,
  `img-src 'self' data:`,
  `frame-ancestors 'self'`,
  `base-uri 'none'`,
  `form-action 'none'`,
].join('; ')

export default defineEventHandler((event) => {
  setResponseHeader(event, 'content-type', 'text/html; charset=utf-8')
  setResponseHeader(event, 'cache-control', 'no-store')
  setResponseHeader(event, 'content-security-policy', DEVTOOLS_PAGE_CSP)
  setResponseHeader(event, 'x-content-type-options', 'nosniff')
  return DEVTOOLS_PAGE
})

/** Poll interval of the page, in ms, and the graph's window, in s. */
const POLL_MS = 1000
const WINDOW_S = 60

// The script below uses no template literals (this whole page is one).
export const DEVTOOLS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>WebSocket proxy · nitro-ws-proxy</title>
<style>
  :root { color-scheme: light dark; --bg: #fff; --fg: #1d2330; --muted: #5f6b7d; --line: #e3e6eb; --card: #f6f7f9;
    --up: #2f6fde; --down: #16a34a; --bad: #c2410c; --ok: #15803d; font: 14px/1.45 system-ui, sans-serif; }
  @media (prefers-color-scheme: dark) { :root:not(.light) { --bg: #151515; --fg: #e6e6e6; --muted: #9aa3ae; --line: #2c2f34; --card: #1d1f22; } }
  :root.dark { --bg: #151515; --fg: #e6e6e6; --muted: #9aa3ae; --line: #2c2f34; --card: #1d1f22; }
  body { margin: 0; padding: 16px 20px 32px; background: var(--bg); color: var(--fg); }
  h1 { font-size: 17px; margin: 0; } h2 { font-size: 14px; margin: 22px 0 8px; }
  header { display: flex; gap: 12px; align-items: baseline; flex-wrap: wrap; }
  code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; }
  .muted { color: var(--muted); }
  #status::before { content: "●"; margin-right: 4px; }
  #status.live { color: var(--ok); } #status.down { color: var(--bad); }
  .tiles { display: flex; gap: 10px; flex-wrap: wrap; margin-top: 12px; }
  .tile { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; min-width: 120px; }
  .tile b { display: block; font-size: 20px; font-variant-numeric: tabular-nums; }
  .graphs { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 12px; margin-top: 12px; }
  figure { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 8px 10px; }
  figcaption { display: flex; justify-content: space-between; color: var(--muted); font-size: 12px; }
  canvas { width: 100%; height: 120px; display: block; }
  .key-up { color: var(--up); } .key-down { color: var(--down); }
  .routes { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 10px; }
  .route { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
  .route h3 { margin: 0 0 4px; font-size: 14px; }
  .route dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 10px; margin: 6px 0 0; }
  .route dt { color: var(--muted); } .route dd { margin: 0; font-variant-numeric: tabular-nums; }
  .route.inactive { border-color: var(--bad); }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { color: var(--muted); font-weight: 500; font-size: 12px; }
  td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
  .cause { font-weight: 600; } .empty td { color: var(--muted); font-style: italic; }
</style>
</head>
<body>
<header>
  <h1>WebSocket proxy</h1>
  <span id="status" class="down">connecting…</span>
  <span id="updated" class="muted"></span>
</header>

<div class="tiles">
  <div class="tile"><span class="muted">Open connections</span><b id="open">–</b></div>
  <div class="tile"><span class="muted">Messages/s <span class="key-up">↑</span> <span class="key-down">↓</span></span><b id="msg-rate">–</b></div>
  <div class="tile"><span class="muted">Bytes/s <span class="key-up">↑</span> <span class="key-down">↓</span></span><b id="byte-rate">–</b></div>
  <div class="tile"><span class="muted">Messages relayed</span><b id="msg-total">–</b></div>
  <div class="tile"><span class="muted">Bytes relayed</span><b id="byte-total">–</b></div>
</div>

<div class="graphs">
  <figure><figcaption><span>Messages/s, last ${WINDOW_S} s</span><span><span class="key-up">■ to upstream</span> <span class="key-down">■ to client</span> · max <span id="msg-max">0</span></span></figcaption><canvas id="graph-messages" aria-label="Messages per second, last ${WINDOW_S} seconds"></canvas></figure>
  <figure><figcaption><span>Bytes/s, last ${WINDOW_S} s</span><span><span class="key-up">■ to upstream</span> <span class="key-down">■ to client</span> · max <span id="byte-max">0</span></span></figcaption><canvas id="graph-bytes" aria-label="Bytes per second, last ${WINDOW_S} seconds"></canvas></figure>
</div>

<h2>Routes</h2>
<div id="routes" class="routes"><p class="muted">No proxied route has been loaded yet.</p></div>

<h2>Open connections</h2>
<table id="connections">
  <thead><tr><th>Route</th><th>Connection</th><th>User</th><th>Client</th><th>Upstream</th><th>Age</th><th>Bytes ↑ / ↓</th><th>Messages ↑ / ↓</th></tr></thead>
  <tbody></tbody>
</table>

<h2>Recent closes</h2>
<table id="closes">
  <thead><tr><th>Ended</th><th>Route</th><th>Connection</th><th>User</th><th>Cause</th><th>Ended by</th><th>Client close</th><th>Upstream close</th><th>Duration</th><th>Bytes ↑ / ↓</th></tr></thead>
  <tbody></tbody>
</table>

<script>
(function () {
  'use strict'
  var POLL_MS = ${POLL_MS}
  var WINDOW_MS = ${WINDOW_S} * 1000
  var stateUrl = location.pathname.replace(/\\/+$/, '') + '/state'
  var samples = []
  var last = null

  function $(id) { return document.getElementById(id) }
  function el(tag, text, cls) {
    var node = document.createElement(tag)
    if (text !== undefined && text !== null) node.textContent = String(text)
    if (cls) node.className = cls
    return node
  }
  function bytes(n) {
    if (n < 1024) return Math.round(n) + ' B'
    if (n < 1048576) return (n / 1024).toFixed(1) + ' KiB'
    if (n < 1073741824) return (n / 1048576).toFixed(1) + ' MiB'
    return (n / 1073741824).toFixed(2) + ' GiB'
  }
  function count(n) { return n < 10 && n % 1 ? n.toFixed(1) : String(Math.round(n)) }
  function duration(ms) {
    if (ms < 1000) return Math.round(ms) + ' ms'
    var s = Math.floor(ms / 1000)
    if (s < 60) return s + ' s'
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s'
    return Math.floor(s / 3600) + ' h ' + Math.floor(s % 3600 / 60) + ' min'
  }
  function ago(ms) { return ms < 1000 ? 'just now' : duration(ms) + ' ago' }
  function pair(d, fmt) { return fmt(d.toUpstream) + ' / ' + fmt(d.toClient) }
  function legClose(c) { return c.code + (c.reason ? ' ' + c.reason : '') }
  function row(cells, attrs) {
    var tr = document.createElement('tr')
    for (var k in attrs || {}) tr.setAttribute(k, attrs[k])
    cells.forEach(function (c) { tr.append(typeof c === 'object' ? c : el('td', c)) })
    return tr
  }
  function numCell(text) { return el('td', text, 'num') }
  function emptyRow(text, span) {
    var td = el('td', text)
    td.colSpan = span
    var tr = row([td])
    tr.className = 'empty'
    return tr
  }

  function addSample(state) {
    var t = state.totals
    var point = { t: state.now, mu: t.messages.toUpstream, md: t.messages.toClient, bu: t.bytes.toUpstream, bd: t.bytes.toClient }
    // Counters restart with the server (dev reload): start the graph again.
    if (last && (last.startedAt !== state.startedAt || point.mu < last.point.mu || point.md < last.point.md)) samples = []
    if (last && point.t > last.point.t) {
      var dt = (point.t - last.point.t) / 1000
      samples.push({
        t: point.t,
        mu: (point.mu - last.point.mu) / dt, md: (point.md - last.point.md) / dt,
        bu: (point.bu - last.point.bu) / dt, bd: (point.bd - last.point.bd) / dt,
      })
    }
    while (samples.length && samples[0].t < state.now - WINDOW_MS) samples.shift()
    last = { startedAt: state.startedAt, point: point }
  }

  function drawGraph(canvas, up, down, now, fmt, maxLabel) {
    var ratio = window.devicePixelRatio || 1
    var w = canvas.clientWidth, h = canvas.clientHeight
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio)
      canvas.height = Math.round(h * ratio)
    }
    var ctx = canvas.getContext('2d')
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0)
    ctx.clearRect(0, 0, w, h)
    var style = getComputedStyle(document.documentElement)
    var max = 0
    samples.forEach(function (s) { max = Math.max(max, s[up], s[down]) })
    var top = max > 0 ? max * 1.15 : 1
    ctx.strokeStyle = style.getPropertyValue('--line')
    ctx.lineWidth = 1
    for (var i = 0; i <= 4; i++) {
      var y = Math.round(4 + (h - 8) * i / 4) + 0.5
      ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(w, y); ctx.stroke()
    }
    // One pair of bars per poll: to upstream (left), to client (right).
    var slot = Math.max(2, w / (WINDOW_MS / POLL_MS))
    var bar = Math.max(1, slot / 2 - 1)
    function bars(key, color, offset) {
      ctx.fillStyle = color
      samples.forEach(function (s) {
        if (!s[key]) return
        var x = w - (now - s.t) / WINDOW_MS * w - slot + offset
        var height = Math.max(1, (h - 8) * s[key] / top)
        ctx.fillRect(x, h - 4 - height, bar, height)
      })
    }
    bars(up, style.getPropertyValue('--up').trim(), 0)
    bars(down, style.getPropertyValue('--down').trim(), bar)
    $(maxLabel).textContent = fmt(max)
  }

  function renderRoutes(routes) {
    var box = $('routes')
    box.replaceChildren()
    if (!routes.length) {
      box.append(el('p', 'No proxied route has been loaded yet.', 'muted'))
      return
    }
    routes.forEach(function (r) {
      var card = el('section', null, 'route' + (r.active ? '' : ' inactive'))
      card.setAttribute('data-route', r.route)
      card.append(el('h3', r.route, 'mono'))
      var dl = document.createElement('dl')
      function item(name, value) { dl.append(el('dt', name), el('dd', value)) }
      item('Target' + (r.targets.length > 1 ? 's' : ''), r.targets.length ? r.targets.join(', ') : (r.active ? '–' : 'setup failed: see the server log'))
      item('Open / opened', r.open + ' / ' + r.opened)
      item('Messages ↑ / ↓', pair(r.messages, count))
      item('Bytes ↑ / ↓', pair(r.bytes, bytes))
      var closed = Object.keys(r.closed).map(function (k) { return k + ' ' + r.closed[k] })
      item('Closed', closed.length ? closed.join(', ') : 'none')
      var refused = Object.keys(r.refused).map(function (k) { return k + ' × ' + r.refused[k] })
      item('Refused', refused.length ? refused.join(', ') : 'none')
      var origins = Object.keys(r.upstreams)
      if (origins.length > 1) {
        item('Pool', origins.map(function (o) {
          var u = r.upstreams[o]
          return o + ' (' + u.open + ' open' + (u.healthy ? '' : ', unhealthy') + ')'
        }).join(', '))
      }
      card.append(dl)
      box.append(card)
    })
  }

  function renderConnections(routes) {
    var body = $('connections').tBodies[0]
    body.replaceChildren()
    routes.forEach(function (r) {
      r.connections.forEach(function (c) {
        body.append(row([
          el('td', r.route, 'mono'), el('td', c.id, 'mono'), el('td', c.user || '–'), el('td', c.clientAddress || '–', 'mono'),
          el('td', c.upstream || '–', 'mono'), numCell(duration(c.ageMs)), numCell(pair(c.bytes, bytes)), numCell(pair(c.messages, count)),
        ], { 'data-id': c.id, 'data-route': r.route }))
      })
    })
    if (!body.rows.length) body.append(emptyRow('No open connection.', 8))
  }

  function renderCloses(routes, now) {
    var body = $('closes').tBodies[0]
    var closes = []
    routes.forEach(function (r) { r.lastCloses.forEach(function (c) { closes.push({ route: r.route, c: c }) }) })
    closes.sort(function (a, b) { return b.c.endedAt - a.c.endedAt })
    body.replaceChildren()
    closes.slice(0, 30).forEach(function (entry) {
      var c = entry.c
      body.append(row([
        numCell(ago(now - c.endedAt)), el('td', entry.route, 'mono'), el('td', c.id, 'mono'), el('td', c.user || '–'),
        el('td', c.cause, 'cause'), el('td', c.source), el('td', legClose(c.client), 'mono'), el('td', legClose(c.upstreamClose), 'mono'),
        numCell(duration(c.durationMs)), numCell(pair(c.bytes, bytes)),
      ], { 'data-id': c.id, 'data-route': entry.route, 'data-cause': c.cause }))
    })
    if (!body.rows.length) body.append(emptyRow('No connection has ended yet.', 10))
  }

  function render(state) {
    addSample(state)
    var latest = samples[samples.length - 1]
    $('open').textContent = state.totals.open
    $('msg-rate').textContent = latest ? count(latest.mu) + ' ↑ ' + count(latest.md) + ' ↓' : '–'
    $('byte-rate').textContent = latest ? bytes(latest.bu) + ' ↑ ' + bytes(latest.bd) + ' ↓' : '–'
    $('msg-total').textContent = count(state.totals.messages.toUpstream + state.totals.messages.toClient)
    $('byte-total').textContent = bytes(state.totals.bytes.toUpstream + state.totals.bytes.toClient)
    drawGraph($('graph-messages'), 'mu', 'md', state.now, count, 'msg-max')
    drawGraph($('graph-bytes'), 'bu', 'bd', state.now, function (n) { return bytes(n) + '/s' }, 'byte-max')
    renderRoutes(state.routes)
    renderConnections(state.routes)
    renderCloses(state.routes, state.now)
    $('status').textContent = 'live'
    $('status').className = 'live'
    $('updated').textContent = 'updated ' + new Date(state.now).toLocaleTimeString()
    document.body.setAttribute('data-updated', String(state.now))
  }

  function poll() {
    fetch(stateUrl, { cache: 'no-store', headers: { accept: 'application/json' } })
      .then(function (res) {
        if (!res.ok) throw new Error('HTTP ' + res.status)
        return res.json()
      })
      .then(render)
      .catch(function (error) {
        $('status').textContent = 'server unreachable (' + error.message + '), retrying'
        $('status').className = 'down'
      })
      .then(function () { setTimeout(poll, document.hidden ? POLL_MS * 5 : POLL_MS) })
  }
  poll()
})()
</script>
</body>
</html>
`
