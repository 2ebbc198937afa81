/**
 * The `shutdown` settings of the module (`wsProxy.shutdown` in the Nitro/Nuxt config, kept in
 * `runtimeConfig.wsProxy.shutdown`, overridable by `NITRO_WS_PROXY_SHUTDOWN_SPREAD` etc.).
 * Pure: checked at build time and read again by the server plugin.
 */

/** How a server closes its proxied connections when it shuts down. */
export interface WsProxyShutdownOptions {
  /**
   * Milliseconds over which open connections are closed, evenly, so that clients do not all
   * reconnect at once. Keep `spread` + 2 s under `NITRO_SHUTDOWN_TIMEOUT` (30 s).
   * @default 10000
   */
  spread?: number
  /** Close code both legs get. @default 1001 */
  code?: number
  /** Close reason both legs get. @default 'Server shutting down' */
  reason?: string
}

/** Shutdown settings with defaults applied. */
export interface ShutdownSettings {
  spread: number
  code: number
  reason: string
}

export const SHUTDOWN_DEFAULTS: ShutdownSettings = { spread: 10_000, code: 1001, reason: 'Server shutting down' }

/**
 * Check and complete the settings; `''`/`null` are unset (runtime config placeholders). Throws a
 * `TypeError` naming `field`.`key` (e.g. `wsProxy.shutdown.spread`).
 */
export function resolveShutdown(raw: unknown, field = 'runtimeConfig.wsProxy.shutdown'): ShutdownSettings {
  if (raw === undefined || raw === null || raw === '') return { ...SHUTDOWN_DEFAULTS }
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new TypeError(`[nitro-ws-proxy] ${field} must be an object { spread?, code?, reason? }`)
  const o = raw as Record<string, unknown>
  for (const key of Object.keys(o)) {
    if (!['spread', 'code', 'reason'].includes(key)) throw new TypeError(`[nitro-ws-proxy] ${field}.${key} is not an option; known options: spread, code, reason`)
  }
  const spread = unset(o.spread) ? SHUTDOWN_DEFAULTS.spread : Number(o.spread)
  if (!Number.isFinite(spread) || spread < 0) throw new TypeError(`[nitro-ws-proxy] ${field}.spread must be a non-negative number of milliseconds, got ${JSON.stringify(o.spread)}`)
  const code = unset(o.code) ? SHUTDOWN_DEFAULTS.code : Number(o.code)
  if (!(code === 1000 || code === 1001 || code === 1008 || code === 1011 || (code >= 3000 && code <= 4999))) {
    throw new TypeError(`[nitro-ws-proxy] ${field}.code must be 1000, 1001, 1008, 1011 or 3000-4999, got ${JSON.stringify(o.code)}`)
  }
  const reason = unset(o.reason) ? SHUTDOWN_DEFAULTS.reason : o.reason
  if (typeof reason !== 'string' || new TextEncoder().encode(reason).length > 123) {
    throw new TypeError(`[nitro-ws-proxy] ${field}.reason must be a string of at most 123 bytes`)
  }
  return { spread, code, reason }
}

function unset(value: unknown): boolean {
  return value === undefined || value === null || value === ''
}
