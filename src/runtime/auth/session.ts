import { unsealSession } from '#nitro-ws-proxy/h3'
import type { H3Event, SessionConfig } from 'h3'
import type { AuthSession } from './types'

/** Seals longer than this are refused without unsealing (browsers cap a cookie at 4 KiB). */
const MAX_SEAL_LENGTH = 8192

type HeaderSource = { headers?: unknown }

/**
 * Read a request header as one string, on a WHATWG `Request`, crossws 0.3's request proxy
 * (a `headers` getter returning `Headers`) or a plain Node-style headers object.
 */
export function readHeader(request: HeaderSource, name: string): string | undefined {
  const headers = request?.headers as any
  if (!headers) {
    return undefined
  }
  if (typeof headers.get === 'function') {
    const value = headers.get(name)
    return value === null || value === undefined ? undefined : String(value)
  }
  const value = headers[name.toLowerCase()]
  if (Array.isArray(value)) {
    return value.join(name.toLowerCase() === 'cookie' ? '; ' : ', ')
  }
  return value === null || value === undefined ? undefined : String(value)
}

/**
 * The value of the first cookie called `name` in a `cookie` header (h3's parser keeps the first
 * too), percent-decoded when valid, else as is.
 */
export function readCookie(cookieHeader: string | undefined, name: string): string | undefined {
  if (!cookieHeader) {
    return undefined
  }
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=')
    if (eq === -1 || part.slice(0, eq).trim() !== name) {
      continue
    }
    let value = part.slice(eq + 1).trim()
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
      value = value.slice(1, -1)
    }
    if (value.includes('%')) {
      try {
        value = decodeURIComponent(value)
      }
      catch {}
    }
    return value
  }
  return undefined
}

/** The unsealed session and the seal's own expiry, or `undefined` for any failure. */
export interface OpenedSession {
  session: AuthSession
  /** Milliseconds since epoch after which the session is no longer valid, if any. */
  expiresAt?: number
}

/**
 * Unseal an h3 session cookie with h3's own `unsealSession` (iron, constant-time MAC check) and
 * h3's `maxAge` rule. Resolves `undefined` on every failure: wrong password, tampered or truncated
 * seal, expired seal or session, a payload that is not a session. Never rejects.
 */
export async function openSession(sealed: string | undefined, config: SessionConfig): Promise<OpenedSession | undefined> {
  if (!sealed || sealed.length > MAX_SEAL_LENGTH) {
    return undefined
  }
  let unsealed: unknown
  try {
    // h3 ignores the event argument of unsealSession.
    unsealed = await unsealSession(undefined as unknown as H3Event, config, sealed)
  }
  catch {
    return undefined
  }
  if (!unsealed || typeof unsealed !== 'object') {
    return undefined
  }
  const { id, createdAt, data } = unsealed as Record<string, unknown>
  if (typeof id !== 'string' || !id || !data || typeof data !== 'object' || Array.isArray(data)) {
    return undefined
  }
  const session: AuthSession = {
    id,
    createdAt: typeof createdAt === 'number' ? createdAt : 0,
    data: data as Record<string, unknown>,
  }
  let expiresAt: number | undefined
  if (config.maxAge) {
    expiresAt = session.createdAt + config.maxAge * 1000
  }
  // The seal's expiry (authenticated by the MAC checked above), with iron's clock skew.
  const sealExpiry = sealed.split('*')[5]
  if (sealExpiry && /^\d+$/.test(sealExpiry)) {
    const skew = (config.seal?.timestampSkewSec ?? 60) * 1000
    const at = Number(sealExpiry) + skew
    expiresAt = expiresAt === undefined ? at : Math.min(expiresAt, at)
  }
  if (expiresAt !== undefined && expiresAt <= Date.now()) {
    return undefined
  }
  return { session, expiresAt }
}

/** `true` when `session.data.user` is present and non-empty (nuxt-auth-utils' convention). */
export function hasUser(user: unknown): boolean {
  if (!user) {
    return false
  }
  if (Array.isArray(user)) {
    return user.length > 0
  }
  if (typeof user === 'object') {
    return Object.keys(user).length > 0
  }
  return true
}
