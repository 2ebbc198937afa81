/** Close codes an endpoint may put on the wire (RFC 6455 §7.4, IANA registry). */
function isSendableCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006)
    || (code >= 3000 && code <= 4999)
}

/**
 * Code to close the client with after the upstream closed with `code`.
 * 1005 (no status) becomes 1000; 1006/1015 (abnormal, TLS) and anything unsendable become 1011.
 */
export function toClientCloseCode(code: number | undefined): number {
  if (code === undefined || code === 1005) return 1000
  return isSendableCode(code) ? code : 1011
}

/**
 * Code to close the upstream with after the client closed with `code`, or `undefined` for a
 * close frame without a code (the client sent none). WHATWG constructors only accept 1000 and
 * 3000-4999, so other codes become 1000 there; an abnormal client drop (1006) is 1001.
 */
export function toUpstreamCloseCode(code: number | undefined, whatwg: boolean): number | undefined {
  if (code === undefined || code === 1005) return undefined
  if (code === 1006 || code === 1015) return whatwg ? 1000 : 1001
  if (whatwg) return code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000
  return isSendableCode(code) ? code : 1000
}

const MAX_REASON_BYTES = 123

/** Cut a close reason to at most 123 UTF-8 bytes, at a character boundary. */
export function truncateReason(reason: string | undefined): string | undefined {
  // 41 UTF-16 units encode to at most 123 bytes: the common short reason skips encoding.
  if (!reason || reason.length <= 41) return reason
  const bytes = Buffer.from(reason, 'utf8')
  if (bytes.length <= MAX_REASON_BYTES) return reason
  let end = MAX_REASON_BYTES
  // Step back over continuation bytes (10xxxxxx) so no character is split.
  while (end > 0 && (bytes[end]! & 0xC0) === 0x80) end--
  return bytes.toString('utf8', 0, end)
}
