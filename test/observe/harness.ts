/**
 * Harness of the observability tests: a route mounted the way the Nitro module does it
 * (`defineWsProxyHandler` with the real core, on crossws 0.3's node adapter), its events as the
 * `ws-proxy:open` / `ws-proxy:close` hooks receive them, and the access log lines it prints.
 * Everything listens on 127.0.0.1 port 0 and is closed by `cleanup()`.
 */
import { WebSocket } from 'ws'
import { vi } from 'vitest'
import type { WebSocketConstructor, WebSocketProxy } from '../../src/core/types'
import { createWebSocketProxy } from '../../src/index'
import { defineWsProxyHandler, type RouteAuth, wsProxies } from '../../src/runtime/handler'
import type { AccessLogFormat, WsProxyCloseEvent, WsProxyOpenEvent } from '../../src/runtime/observe'
import { type ProxyServer, startProxy, track } from '../helpers'

export interface HookCall {
  name: 'ws-proxy:open' | 'ws-proxy:close'
  event: WsProxyOpenEvent | WsProxyCloseEvent
}

export interface MountedRoute {
  route: string
  server: ProxyServer
  proxy: WebSocketProxy
  /** Every hook call, in order. */
  hooks: HookCall[]
  opens: () => WsProxyOpenEvent[]
  closes: () => WsProxyCloseEvent[]
}

let routeCount = 0

/**
 * Mount one proxied route (`/r<n>/**` unless `route` is given) whose runtime config entry is
 * `entry`, with hooks recorded and the access log in `accessLog` format.
 */
export async function mountRoute(
  entry: Record<string, unknown>,
  options: { route?: string, auth?: RouteAuth, accessLog?: AccessLogFormat } = {},
): Promise<MountedRoute> {
  const route = options.route ?? `/r${++routeCount}/**`
  const hooks: HookCall[] = []
  const handler = defineWsProxyHandler({
    route,
    name: 'route',
    envPrefix: 'NITRO_WS_PROXY_ROUTE_',
    createWebSocketProxy,
    WebSocket: WebSocket as unknown as WebSocketConstructor,
    runtimeConfig: { wsProxy: { route: entry } },
    auth: options.auth,
    observe: {
      callHook: (name, event) => { hooks.push({ name, event }) },
      accessLog: options.accessLog ?? 'text',
    },
  })
  const proxy = wsProxies.get(route)!
  track(() => { wsProxies.delete(route) })
  const server = await startProxy((handler as unknown as { __websocket__: object }).__websocket__, { crossws: '0.3' })
  return {
    route,
    server,
    proxy,
    hooks,
    opens: () => hooks.filter(h => h.name === 'ws-proxy:open').map(h => h.event),
    closes: () => hooks.filter(h => h.name === 'ws-proxy:close').map(h => h.event as WsProxyCloseEvent),
  }
}

/** The URL of `path` below a mounted route's prefix (`/r1/**` + `x` → `ws://…/r1/x`). */
export function routeUrl(mounted: MountedRoute, path = ''): string {
  return `${mounted.server.url}${mounted.route.replace(/\/\*\*$/, '')}${path}`
}

/** What the access log printed through `console.log` since {@link captureAccessLog}. */
export interface AccessLogCapture {
  lines: string[]
  /** The `id` of each line (text or JSON), in order. */
  ids: () => string[]
  /** Lines per connection id. */
  countById: () => Map<string, number>
}

/** Capture the access log lines (`console.log` calls that are ours); restored by `cleanup()`. */
export function captureAccessLog(): AccessLogCapture {
  const lines: string[] = []
  const original = console.log
  const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    const line = String(args[0])
    if (line.startsWith('[nitro-ws-proxy] ts=') || line.startsWith('{"msg":"nitro-ws-proxy connection closed"')) lines.push(line)
    else original(...args)
  })
  track(() => spy.mockRestore())
  const ids = () => lines.map(accessLogId)
  return {
    lines,
    ids,
    countById: () => {
      const counts = new Map<string, number>()
      for (const id of ids()) counts.set(id, (counts.get(id) ?? 0) + 1)
      return counts
    },
  }
}

/** The connection id of one access log line. */
export function accessLogId(line: string): string {
  if (line.startsWith('{')) return (JSON.parse(line) as { id: string }).id
  const match = / id=(\S+)/.exec(line)
  if (!match) throw new Error(`No id in access log line ${JSON.stringify(line)}`)
  return match[1]!
}

/** The fields of a text access log line (`key=value`, values JSON-quoted when they have spaces). */
export function parseTextLine(line: string): Record<string, string> {
  const fields: Record<string, string> = {}
  const body = line.replace(/^\[nitro-ws-proxy\] /, '')
  const pattern = /(\w+)=("(?:[^"\\]|\\.)*"|\S*)/g
  for (const match of body.matchAll(pattern)) {
    fields[match[1]!] = match[2]!.startsWith('"') ? JSON.parse(match[2]!) as string : match[2]!
  }
  return fields
}
