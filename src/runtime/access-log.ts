import type { AccessLogFormat } from './observe'

/**
 * The access log format from runtime config (`wsProxy.accessLog`, env
 * `NITRO_WS_PROXY_ACCESS_LOG`): `true`/`'text'` → one `key=value` line per ended connection,
 * `'json'` → one JSON object per line, anything unset or false → off.
 */
export function accessLogFormat(value: unknown): AccessLogFormat {
  if (value === true || value === 'true' || value === 'text') return 'text'
  if (value === 'json') return 'json'
  return false
}
