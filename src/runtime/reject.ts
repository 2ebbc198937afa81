/**
 * Refuse a WebSocket upgrade in a way both crossws adapters write cleanly: explicit status text,
 * a byte body with its length and no content-type (crossws 0.3 URL-encodes header values), and
 * `connection: close`.
 */
export function rejectUpgrade(status: number, statusText: string, body: string = statusText): Response {
  const bytes = new TextEncoder().encode(body)
  return new Response(bytes, {
    status,
    statusText,
    headers: { 'content-length': String(bytes.byteLength), 'connection': 'close' },
  })
}
