/**
 * crossws's Deno adapter as the proxy needs it. The Nitro module uses it for Nitro's Deno presets
 * (it aliases `crossws/adapters/deno` to the real adapter wrapped with this); users of the core on
 * `Deno.serve` wrap their adapter themselves.
 *
 * What it fixes on `Deno.serve`:
 * - crossws 0.3 (bundled with nitropack 2) hands the upgrade's `sec-websocket-protocol` to
 *   `Deno.upgradeWebSocket` as `headers`, which Deno ignores (it takes `protocol`): no
 *   subprotocol would ever be answered.
 * - Deno splits the client's offer on `", "` only, so an offer written `a,b` (as `ws` and most
 *   non-browser clients write it) makes `Deno.upgradeWebSocket` throw for every answer: a 500.
 * - The client address lives in `Deno.serve`'s connection info, which cannot be read once the
 *   101 is sent; the proxy reads it during `upgrade`, before a peer exists.
 * Close codes (reported as `{}` by the adapter, on both crossws lines) are read by the core from
 * the socket's own `close` event, with or without this wrapper.
 */
/** The core's `kRemoteAddress` (core/fence.ts): where it looks for the address during `upgrade`. */
const kRemoteAddress = Symbol.for('nitro-ws-proxy.remote-address')

interface DenoLike {
  upgradeWebSocket: ((request: Request, options?: { protocol?: string, headers?: HeadersInit }) => unknown) & { [kPatched]?: true }
}

interface AdapterLike {
  handleUpgrade: (request: Request, info?: { remoteAddr?: { hostname?: string } }) => Promise<Response>
}

const kPatched = Symbol.for('nitro-ws-proxy.deno-upgrade')

/**
 * Wrap crossws's Deno adapter factory (0.3 or 0.4) so subprotocols are answered whatever way the
 * client wrote its offer, and the client address is known to the proxy. It patches
 * `Deno.upgradeWebSocket` once, process-wide (a no-op outside Deno): an answer Deno would refuse
 * is set on the 101 response's headers instead.
 *
 * @example
 * ```ts
 * import denoAdapter from 'crossws/adapters/deno'
 * import { createWebSocketProxy, fixDenoAdapter } from 'nitro-ws-proxy'
 *
 * const ws = fixDenoAdapter(denoAdapter)({ hooks: createWebSocketProxy('ws://127.0.0.1:4000') })
 * Deno.serve((request, info) => ws.handleUpgrade(request, info))
 * ```
 */
export function fixDenoAdapter<O, A extends AdapterLike>(factory: (options?: O) => A): (options?: O) => A {
  return (options?: O) => {
    answerProtocolFromHeaders()
    const adapter = factory(options)
    return {
      ...adapter,
      handleUpgrade(request: Request, info?: { remoteAddr?: { hostname?: string } }) {
        try {
          (request as unknown as Record<symbol, unknown>)[kRemoteAddress] = info?.remoteAddr?.hostname
        }
        catch {}
        return adapter.handleUpgrade(request, info)
      },
    }
  }
}

/**
 * `Deno.upgradeWebSocket` answers `options.protocol` and ignores `options.headers`: fill the
 * former from the latter when a caller (crossws 0.3) gave only headers. Deno also splits the
 * client's offer on `", "` only and throws for an offer written `a,b` (as `ws` and other
 * non-browser clients write it, RFC 7230 allows both): such an answer is set on the 101
 * response's headers instead. Installed once.
 */
function answerProtocolFromHeaders(): void {
  const deno = (globalThis as { Deno?: DenoLike }).Deno
  if (!deno || typeof deno.upgradeWebSocket !== 'function' || deno.upgradeWebSocket[kPatched]) return
  const upgrade = deno.upgradeWebSocket
  const patched: DenoLike['upgradeWebSocket'] = function (request, options) {
    let protocol = options?.protocol
    if (protocol === undefined && options?.headers) protocol = new Headers(options.headers).get('sec-websocket-protocol') ?? undefined
    if (!protocol) return upgrade.call(deno, request, options)
    const offered = (request.headers.get('sec-websocket-protocol') ?? '').split(', ')
    if (offered.includes(protocol)) return upgrade.call(deno, request, { ...options, protocol })
    const result = upgrade.call(deno, request, { ...options, protocol: undefined }) as { response?: Response }
    result.response?.headers.set('sec-websocket-protocol', protocol)
    return result
  }
  patched[kPatched] = true
  try {
    deno.upgradeWebSocket = patched
  }
  catch {}
}
