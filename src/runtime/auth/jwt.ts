/**
 * Bearer JWTs at the upgrade: where the token travels (header, query parameter, subprotocol
 * entry) and its verification with jose (signature, algorithm allowlist, `exp`/`nbf`, `iss`,
 * `aud`), against a remote JWKS or a shared secret.
 */
import type { JWTPayload, JWTVerifyGetKey, JWTVerifyOptions } from 'jose'
import { base64url, createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify } from 'jose'
import type { AuthJwksOptions, JwtTransport, NormalizedJwtRule } from './types'
import { JWT_PROTOCOL_PREFIX } from './types'
import { getJwtSecretProblem } from './config'
import { readHeader } from './session'

/** Tokens longer than this are refused without parsing (a JWT in a header is a few KiB at most). */
export const MAX_TOKEN_LENGTH = 8192

/** The query parameter names of `'query:<name>'` transports. */
export function queryTransports(from: readonly JwtTransport[]): string[] {
  return from.filter(t => t.startsWith('query:')).map(t => t.slice('query:'.length))
}

/** `true` for a subprotocol entry carrying a token (`base64url.bearer.…`, any case). */
export function isTokenProtocol(entry: string): boolean {
  return entry.length >= JWT_PROTOCOL_PREFIX.length && entry.slice(0, JWT_PROTOCOL_PREFIX.length).toLowerCase() === JWT_PROTOCOL_PREFIX
}

/** The offer without its token entries (the core's `protocolOffer`). */
export function dropTokenProtocols(offer: string[]): string[] {
  return offer.filter(entry => !isTokenProtocol(entry))
}

/**
 * The token of a subprotocol entry: the JWT as is (`base64url.bearer.eyJ…`, it has dots), or
 * base64url-encoded as Kubernetes writes it (no dots). `''` when the encoding is broken.
 */
function protocolToken(entry: string): string {
  const rest = entry.slice(JWT_PROTOCOL_PREFIX.length)
  if (rest.includes('.')) return rest
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(base64url.decode(rest))
  }
  catch {
    return ''
  }
}

/** What the request carries: every token found in the rule's transports, in order. */
export function findTokens(request: Request, url: URL, from: readonly JwtTransport[]): string[] {
  const tokens: string[] = []
  for (const transport of from) {
    if (transport === 'header') {
      const value = readHeader(request, 'authorization')
      // RFC 6750 §2.1; the scheme is case-insensitive (RFC 9110 §11.1). Other schemes are not ours.
      const match = value === undefined ? null : /^[ \t]*bearer(?:[ \t]+(.*?))?[ \t]*$/i.exec(value)
      if (match) tokens.push(match[1] ?? '')
    }
    else if (transport === 'protocol') {
      const offer = readHeader(request, 'sec-websocket-protocol')
      if (offer === undefined) continue
      for (const part of offer.split(',')) {
        const entry = part.trim()
        if (isTokenProtocol(entry)) tokens.push(protocolToken(entry))
      }
    }
    else {
      for (const value of url.searchParams.getAll(transport.slice('query:'.length))) tokens.push(value)
    }
  }
  return tokens
}

/** The outcome of {@link JwtVerifier.verify}. */
export type JwtVerdict =
  | { ok: true, claims: JWTPayload, expiresAt: number }
  /** 401: the token is not valid. 503: the JWKS could not be fetched. 500: no usable secret. */
  | { ok: false, status: 401 | 500 | 503 }

/** Verifies the tokens of one route. */
export interface JwtVerifier {
  /** Never rejects. */
  verify: (token: string) => Promise<JwtVerdict>
}

/** Inputs of {@link createJwtVerifier}. */
export interface JwtVerifierOptions {
  /** For messages: `'/live/**'`. */
  route: string
  /** The shared secret (runtime config), for rules without `jwks`. */
  secret?: unknown
  /** Env variable to name when the secret is missing. */
  secretEnv?: string
  jwks?: AuthJwksOptions
  logError: (message: string, error?: unknown) => void
}

/** A failure to get the keys (network, status, JSON), as opposed to a token without a key. */
class KeySourceError extends Error {}

/**
 * The verifier of one `jwt` rule. With `jwks`, one remote key set per route: fetched on the first
 * token, cached, fetched again for an unknown `kid` (after the cooldown) so rotated keys are
 * picked up; when a refresh fails the keys already known keep working. Without `jwks`, the
 * shared secret. Key-source failures answer 503 and are logged once per outage.
 */
export function createJwtVerifier(rule: NormalizedJwtRule, options: JwtVerifierOptions): JwtVerifier {
  const { route, logError } = options
  const verifyOptions: JWTVerifyOptions = {
    algorithms: rule.algorithms,
    clockTolerance: rule.clockTolerance,
    requiredClaims: ['exp'],
    ...(rule.issuer ? { issuer: rule.issuer } : {}),
    ...(rule.audience ? { audience: rule.audience } : {}),
  }

  let key: Uint8Array | JWTVerifyGetKey | undefined
  let secretProblem: string | undefined
  let secretProblemLogged = false
  let outage = false

  if (rule.jwks) {
    const remote = createRemoteJWKSet(new URL(rule.jwks), {
      timeoutDuration: options.jwks?.timeout ?? 5000,
      cooldownDuration: options.jwks?.cooldown ?? 30_000,
      cacheMaxAge: options.jwks?.cacheMaxAge ?? 600_000,
    })
    let stale: { source: string, getKey: JWTVerifyGetKey } | undefined
    key = async (header, token) => {
      try {
        const found = await remote(header, token)
        outage = false
        return found
      }
      catch (error) {
        // The token's own fault: no key for its kid/alg, or an algorithm keys cannot have.
        if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys
          || error instanceof errors.JOSENotSupported) {
          throw error
        }
        // The issuer did not answer (or answered garbage) while refreshing: keep the known keys.
        const known = remote.jwks()
        if (known) {
          const source = JSON.stringify(known)
          if (stale?.source !== source) stale = { source, getKey: createLocalJWKSet(known) }
          reportOutage(error, true)
          return stale.getKey(header, token)
        }
        throw new KeySourceError('JWKS unavailable', { cause: error })
      }
    }
  }
  else {
    secretProblem = getJwtSecretProblem(options.secret, options.secretEnv, [route])
    if (!secretProblem) key = new TextEncoder().encode(options.secret as string)
  }

  /** Log the first failure of an outage (until a fetch succeeds again). */
  function reportOutage(error: unknown, keysKnown = false): void {
    if (outage) return
    outage = true
    const code = (error as { cause?: { code?: unknown } } | undefined)?.cause?.code
    const cause = `${error instanceof Error ? error.message : String(error)}${typeof code === 'string' ? `: ${code}` : ''}`
    const effect = keysKnown
      ? 'the keys fetched before keep verifying tokens meanwhile'
      : 'upgrades are answered 503 until it can'
    logError(`[nitro-ws-proxy] The JWKS of routeRules['${route}'] (${rule.jwks}) could not be fetched (${cause}): ${effect}. Logged once per outage.`)
  }

  async function verifyWith(token: string): Promise<JWTPayload> {
    try {
      return (await jwtVerify(token, key as JWTVerifyGetKey, verifyOptions)).payload
    }
    catch (error) {
      // No kid and several keys that fit (a rotation in progress): try each.
      if (error instanceof errors.JWKSMultipleMatchingKeys) {
        for await (const candidate of error) {
          try {
            return (await jwtVerify(token, candidate, verifyOptions)).payload
          }
          catch {}
        }
      }
      throw error
    }
  }

  async function verify(token: string): Promise<JwtVerdict> {
    if (secretProblem) {
      if (!secretProblemLogged) {
        secretProblemLogged = true
        logError(secretProblem)
      }
      return { ok: false, status: 500 }
    }
    // A compact JWS: three base64url parts. Anything else is refused before parsing.
    if (!token || token.length > MAX_TOKEN_LENGTH || !/^[\w-]+\.[\w-]+\.[\w-]+$/.test(token)) {
      return { ok: false, status: 401 }
    }
    try {
      const claims = await verifyWith(token)
      return { ok: true, claims, expiresAt: (claims.exp as number) * 1000 + rule.clockTolerance * 1000 }
    }
    catch (error) {
      if (error instanceof KeySourceError) {
        reportOutage(error.cause)
        return { ok: false, status: 503 }
      }
      return { ok: false, status: 401 }
    }
  }

  return { verify }
}
