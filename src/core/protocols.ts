/** RFC 7230 `token`: the only form a WebSocket subprotocol may take (RFC 6455 §4.1). */
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * Parse a `sec-websocket-protocol` offer: distinct tokens separated by commas and optional
 * whitespace (RFC 6455 §4.1, §11.3.4). Returns `undefined` for a malformed offer (an empty
 * element, a non-token, a duplicate), which the handshake must refuse with 400 as `ws` does.
 */
export function parseProtocolOffer(header: string | null | undefined): string[] | undefined {
  if (header === null || header === undefined) return []
  const tokens: string[] = []
  for (const part of header.split(',')) {
    const token = part.replace(/^[ \t]+|[ \t]+$/g, '')
    if (!TOKEN_RE.test(token) || tokens.includes(token)) return undefined
    tokens.push(token)
  }
  return tokens
}
