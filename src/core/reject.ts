/** Status texts of the statuses the proxy answers upgrades with. */
const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  410: 'Gone',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
}

/**
 * Refuse a WebSocket upgrade in a way every crossws adapter writes cleanly: explicit status text,
 * a byte body with its length and no content-type (crossws 0.3 URL-encodes header values), and
 * `connection: close`. The one rejection path of the core and the Nitro runtime. `headers` adds
 * headers such as `retry-after`.
 *
 * @example
 * ```ts
 * upgrade(request) {
 *   if (!request.headers.get('authorization')) return rejectUpgrade(401)
 *   return proxy.upgrade(request)
 * }
 * ```
 */
export function rejectUpgrade(
  status: number,
  statusText: string = STATUS_TEXT[status] ?? 'Error',
  body: string = statusText,
  headers?: Record<string, string>,
): Response {
  const bytes = new TextEncoder().encode(body)
  return new Response(bytes, {
    status,
    statusText,
    headers: { ...headers, 'content-length': String(bytes.byteLength), 'connection': 'close' },
  })
}
