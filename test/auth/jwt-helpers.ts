/**
 * Real keys and tokens for the JWT tests, made with jose at test time (nothing committed): RS256
 * key pairs, a JWKS served by a local `node:http` server on 127.0.0.1:0 (keys swappable, fetches
 * counted, failures scriptable), and every kind of bad token.
 */
import type { JWK, JWTPayload, KeyObject } from 'jose'
import { createServer } from 'node:http'
import { base64url, exportJWK, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose'
import { track } from '../helpers'

export interface TestKey {
  kid: string
  privateKey: CryptoKey | KeyObject
  /** The public JWK, with `kid`, `alg` and `use`. */
  jwk: JWK
}

/** A fresh RS256 key pair named `kid`. */
export async function makeKey(kid: string, alg = 'RS256'): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  return { kid, privateKey, jwk: { ...await exportJWK(publicKey), kid, alg, use: 'sig' } }
}

export interface JwksServer {
  /** `http://127.0.0.1:<port>/jwks.json` */
  url: string
  /** Requests received so far. */
  readonly fetches: number
  /** The keys served (replace to rotate). */
  keys: JWK[]
  /** Answer with this status (and no JSON) instead of the keys; `undefined` serves the keys. */
  failWith: number | undefined
  close: () => Promise<void>
}

/** Serve `{ keys }` on 127.0.0.1:0, closed by `cleanup()`. */
export async function startJwksServer(keys: JWK[]): Promise<JwksServer> {
  let fetches = 0
  const state = { keys, failWith: undefined as number | undefined }
  const server = createServer((req, res) => {
    fetches++
    if (state.failWith !== undefined) {
      res.writeHead(state.failWith, { 'content-type': 'text/plain' }).end('down')
      return
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys }))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const close = () => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  })
  track(close)
  return {
    url: `http://127.0.0.1:${port}/jwks.json`,
    get fetches() { return fetches },
    get keys() { return state.keys },
    set keys(value) { state.keys = value },
    get failWith() { return state.failWith },
    set failWith(value) { state.failWith = value },
    close,
  }
}

export interface SignOptions {
  /** Header `kid`; `null` leaves it out. @default key.kid */
  kid?: string | null
  alg?: string
  /** Seconds from now; `null` leaves `exp` out. @default 60 */
  expiresIn?: number | null
  /** `nbf`, seconds from now. */
  notBefore?: number
}

const now = () => Math.floor(Date.now() / 1000)

/** Sign `claims` with `key` (a test key, or a raw secret for HS*). */
export async function sign(claims: JWTPayload, key: TestKey | Uint8Array, options: SignOptions = {}): Promise<string> {
  const isSecret = key instanceof Uint8Array
  const alg = options.alg ?? (isSecret ? 'HS256' : 'RS256')
  const kid = options.kid === undefined ? (isSecret ? undefined : key.kid) : options.kid ?? undefined
  let jwt = new SignJWT(claims).setProtectedHeader({ alg, ...(kid ? { kid } : {}), typ: 'JWT' }).setIssuedAt()
  const expiresIn = options.expiresIn === undefined ? 60 : options.expiresIn
  if (expiresIn !== null) jwt = jwt.setExpirationTime(now() + expiresIn)
  if (options.notBefore !== undefined) jwt = jwt.setNotBefore(now() + options.notBefore)
  return jwt.sign(isSecret ? key : key.privateKey)
}

/** Replace the payload of a signed token (the signature no longer matches). */
export function forge(token: string, claims: JWTPayload): string {
  const [header, , signature] = token.split('.')
  return `${header}.${base64url.encode(JSON.stringify(claims))}.${signature}`
}

/** An unsecured JWT (`alg: none`), as is (empty signature) or with a made-up signature. */
export function unsecured(claims: JWTPayload, fakeSignature = false): string {
  const token = new UnsecuredJWT(claims).setIssuedAt().setExpirationTime(now() + 60).encode()
  return fakeSignature ? `${token}${base64url.encode('signature')}` : token
}

/** `base64url.bearer.<token>`, the token as is or base64url-encoded (Kubernetes' form). */
export function protocolEntry(token: string, encoded = false): string {
  return `base64url.bearer.${encoded ? base64url.encode(token) : token}`
}
