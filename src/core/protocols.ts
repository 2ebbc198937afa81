/** RFC 7230 `token`: the only form a WebSocket subprotocol may take (RFC 6455 §4.1). */
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * Parse a `sec-websocket-protocol` offer into its valid, distinct tokens, in order.
 * Invalid tokens are dropped so they are never echoed nor sent upstream.
 */
export function parseProtocolOffer(header: string | null | undefined): string[] {
  if (!header) return []
  const tokens: string[] = []
  for (const part of header.split(',')) {
    const token = part.trim()
    if (token && TOKEN_RE.test(token) && !tokens.includes(token)) tokens.push(token)
  }
  return tokens
}
