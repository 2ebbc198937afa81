/**
 * nitro-ws-proxy core: crossws hooks that relay WebSocket clients to upstream servers.
 * Runtime-only: importing this entry pulls in no Nitro, Nuxt or h3 code.
 * @module
 */
export { createWebSocketProxy } from './core/proxy'
export { fixDenoAdapter } from './core/deno-adapter'
export { rejectUpgrade } from './core/reject'
export type {
  ProxyHeadersInit,
  ProxyPeer,
  WebSocketConstructor,
  WebSocketProxy,
  WebSocketProxyBalance,
  WebSocketProxyConnectionInfo,
  WebSocketProxyConnectionRecord,
  WebSocketProxyLegClose,
  WebSocketProxyLimits,
  WebSocketProxyDrainOptions,
  WebSocketProxyHashKey,
  WebSocketProxyHealthCheck,
  WebSocketProxyTargetList,
  WebSocketProxyUpstreamStats,
  WebSocketProxyCloseCause,
  WebSocketProxyCloseDetails,
  WebSocketProxyOptions,
  WebSocketProxyStats,
  WebSocketProxyTarget,
  WebSocketProxyUpstream,
} from './core/types'
