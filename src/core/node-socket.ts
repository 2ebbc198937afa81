import type { Peer } from 'crossws'

/**
 * The subset of a `ws` WebSocket (the socket behind crossws's Node adapter, both lines) that
 * the relay uses directly: its `message` event keeps the text/binary flag that crossws 0.3
 * drops, and it can be paused, pinged and measured.
 */
export interface NodeWebSocket {
  readonly readyState: number
  readonly bufferedAmount: number
  readonly protocol: string
  readonly _socket?: { once: (event: 'drain', listener: () => void) => unknown } | null
  on: (event: string, listener: (...args: any[]) => void) => unknown
  send: (data: unknown, options?: { binary?: boolean }, cb?: (err?: Error) => void) => void
  close: (code?: number, reason?: string) => void
  terminate: () => void
  ping: (data?: unknown) => void
  pause: () => void
  resume: () => void
}

/** The raw `ws` socket behind a peer of crossws's Node adapter, or `undefined` on other adapters. */
export function getNodeWebSocket(peer: Peer): NodeWebSocket | undefined {
  const ws = (peer as unknown as { _internal?: { ws?: NodeWebSocket } })._internal?.ws
  return ws && typeof ws.on === 'function' && typeof ws.pause === 'function' && typeof ws.ping === 'function'
    ? ws
    : undefined
}

interface NodeRequestLike { headers: Record<string, string | string[] | undefined>, socket?: { remoteAddress?: string } }

/**
 * The Node `IncomingMessage` behind a crossws **0.3** Node upgrade request. On that line the
 * adapter's `ws` server echoes the first offered subprotocol by itself, reading it from this
 * object's headers; crossws 0.4 requests do not carry it.
 */
export function getLegacyNodeRequest(request: Request): NodeRequestLike | undefined {
  const req = (request as unknown as { _req?: NodeRequestLike })._req
  return req && typeof req.headers === 'object' ? req : undefined
}

/** Best-effort client address during `upgrade`, before a peer exists. */
export function getUpgradeRemoteAddress(request: Request): string | undefined {
  const r = request as unknown as { _req?: NodeRequestLike, runtime?: { node?: { req?: NodeRequestLike } } }
  return r._req?.socket?.remoteAddress ?? r.runtime?.node?.req?.socket?.remoteAddress
}
