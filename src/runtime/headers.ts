/**
 * Which headers the proxy may set on the upstream handshake: one policy for a rule's `headers`
 * (checked at build time and again at server start), the auth `userHeader` and the headers the
 * `ws-proxy:auth` hook leaves in `ctx.headers`.
 *
 * Pure: imported by the Nitro module (build time) and by the runtime.
 */

/** An HTTP header name (RFC 9110 token). */
export const HEADER_NAME_RE = /^[!#$%&'*+.^`|~\w-]+$/

/** Written by the WebSocket client for the handshake it performs. */
const HANDSHAKE = new Set(['connection', 'upgrade'])
/** Hop-by-hop and message-framing headers: they describe one connection, never forwarded. */
const HOP_BY_HOP = new Set(['content-length', 'transfer-encoding', 'te', 'trailer', 'keep-alive'])

/**
 * Why `name` may not be set on the upstream handshake, or `undefined` when it may. Refused: names
 * that are not HTTP tokens, `host` (the target's), the handshake's own headers (`connection`,
 * `upgrade`, `sec-websocket-*`) and hop-by-hop or framing headers (`content-length`,
 * `transfer-encoding`, `te`, `trailer`, `keep-alive`, `proxy-*`). Case-insensitive.
 *
 * @example handshakeHeaderProblem('host') // 'the upstream host comes from the target URL'
 */
export function handshakeHeaderProblem(name: string): string | undefined {
  if (typeof name !== 'string' || !HEADER_NAME_RE.test(name)) {
    return 'a header name is a token of letters, digits and !#$%&\'*+-.^_`|~'
  }
  const lower = name.toLowerCase()
  if (lower === 'host') {
    return 'the upstream host comes from the target URL'
  }
  if (HANDSHAKE.has(lower) || lower.startsWith('sec-websocket-')) {
    return 'the WebSocket client writes the handshake headers itself'
  }
  if (HOP_BY_HOP.has(lower) || lower.startsWith('proxy-')) {
    return 'hop-by-hop and framing headers belong to one connection and are never forwarded'
  }
  return undefined
}

/** `headers.host` for a token, `headers["a b"]` otherwise: how a header is named in messages. */
export function headerPath(field: string, name: string): string {
  return HEADER_NAME_RE.test(name) ? `${field}.${name}` : `${field}[${JSON.stringify(name)}]`
}
