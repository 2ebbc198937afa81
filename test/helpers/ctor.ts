/**
 * Which WebSocket constructor the proxy dials the upstream with, chosen by the
 * `PROXY_UPSTREAM_CTOR` environment variable:
 * - `ws` (default): `WebSocket` from the `ws` package, passed as the `WebSocket` option
 *   (honours `headers`, `webSocketOptions`, `ws+unix:` and any close code);
 * - `global`: no `WebSocket` option, so the proxy uses `globalThis.WebSocket` (undici, Node >= 22),
 *   which ignores headers and options and only sends close codes 1000 and 3000-4999.
 */
import type { WebSocketConstructor } from '../../src/core/types'
import { WebSocket } from 'ws'

export type UpstreamCtor = 'ws' | 'global'

function readMode(): UpstreamCtor {
  const value = process.env.PROXY_UPSTREAM_CTOR ?? 'ws'
  if (value !== 'ws' && value !== 'global') {
    throw new Error(`PROXY_UPSTREAM_CTOR must be "ws" or "global", got ${JSON.stringify(value)}`)
  }
  if (value === 'global' && typeof globalThis.WebSocket !== 'function') {
    throw new Error(`PROXY_UPSTREAM_CTOR=global needs a global WebSocket (Node >= 22); this is Node ${process.version}`)
  }
  return value
}

/** The constructor mode of this run. */
export const upstreamCtor: UpstreamCtor = readMode()

/** True when the proxy dials with the `ws` package (custom headers, unix sockets, any close code). */
export const usesWsCtor = upstreamCtor === 'ws'

/** `ws`'s constructor, typed as the proxy option expects it. */
export const WsWebSocket = WebSocket as unknown as WebSocketConstructor

/** Spread into proxy options: `{ WebSocket: ws }` in `ws` mode, nothing in `global` mode. */
export function ctorOption(): { WebSocket?: WebSocketConstructor } {
  return usesWsCtor ? { WebSocket: WsWebSocket } : {}
}
