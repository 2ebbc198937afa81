/**
 * One active health check of one upstream: an HTTP GET of `healthCheck.path` on its host, or,
 * without a path (and for `ws+unix:` upstreams), a WebSocket handshake on the target it serves.
 */
import type { ResolvedProxyOptions } from './options'
import type { UpstreamState } from './pool'

/** Whether the upstream passed: a 2xx/3xx answer, or a handshake that opened, within the timeout. */
export function checkUpstream(o: ResolvedProxyOptions, state: UpstreamState): Promise<boolean> {
  const check = o.healthCheck!
  const timeout = check.timeout ?? Math.min(check.interval, 5000)
  const url = state.probeUrl
  if (check.path && url.protocol !== 'ws+unix:') {
    const http = `${url.protocol === 'wss:' ? 'https:' : 'http:'}//${url.host}${check.path}`
    return fetch(http, { signal: AbortSignal.timeout(timeout), redirect: 'manual' })
      .then((response) => {
        void response.body?.cancel()
        return response.status >= 200 && response.status < 400
      }, () => false)
  }
  return handshake(o, url, timeout)
}

function handshake(o: ResolvedProxyOptions, url: URL, timeout: number): Promise<boolean> {
  return new Promise((resolve) => {
    let socket: any
    let done = false
    const finish = (ok: boolean) => {
      if (done) return
      done = true
      clearTimeout(timer)
      try {
        if (ok) socket.close(1000, 'Health check')
        else if (typeof socket?.terminate === 'function') socket.terminate()
        else socket?.close()
      }
      catch {}
      resolve(ok)
    }
    const timer = setTimeout(finish, timeout, false)
    try {
      const Ctor = o.WebSocket as any
      socket = o.whatwg ? new Ctor(url) : new Ctor(url, undefined, { perMessageDeflate: false, handshakeTimeout: timeout })
    }
    catch {
      return finish(false)
    }
    if (o.whatwg) {
      socket.addEventListener('open', () => finish(true))
      socket.addEventListener('error', () => finish(false))
      socket.addEventListener('close', () => finish(false))
    }
    else {
      socket.on('open', () => finish(true))
      socket.on('error', () => finish(false))
      socket.on('close', () => finish(false))
    }
  })
}
