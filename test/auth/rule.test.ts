/** Build-time validation of `wsProxy.auth` in route rules. */
import { describe, expect, it } from 'vitest'
import { validateAuthRule } from '../../src/nitro/auth-rule'
import { handlerCode, normalizeWsProxyRules } from '../../src/nitro'
import { jwtCheckCode } from '../../src/nitro/module'

const route = '/live/**'
const at = `[nitro-ws-proxy] routeRules['/live/**'].wsProxy.auth`

describe('validateAuthRule', () => {
  it('normalises the accepted forms', () => {
    const off = { session: false, allowedOrigins: [], requireUser: {}, userHeader: 'x-ws-proxy-user', forwardCookies: false }
    expect(validateAuthRule(route, undefined)).toEqual(off)
    expect(validateAuthRule(route, false)).toEqual(off)
    expect(validateAuthRule(route, true)).toEqual({ ...off, session: true })
    expect(validateAuthRule(route, {
      session: true,
      allowedOrigins: ['https://App.Example.com:443/', 'http://localhost:3000', 'https://app.example.com'],
      trustProxy: true,
      requireUser: { 'role': ['admin', 'staff'], 'org.id': 42, 'verified': true },
      userHeader: 'X-Auth-User',
      forwardCookies: true,
    })).toEqual({
      session: true,
      allowedOrigins: ['https://app.example.com', 'http://localhost:3000'],
      trustProxy: true,
      requireUser: { 'role': ['admin', 'staff'], 'org.id': [42], 'verified': [true] },
      userHeader: 'x-auth-user',
      forwardCookies: true,
    })
    expect(validateAuthRule(route, { session: true, userHeader: false }).userHeader).toBe(false)
  })

  it('refuses a password or secret, pointing to the env variable, without echoing it', () => {
    for (const value of [
      { session: true, password: 'a-very-long-secret-value-0123456789' },
      { session: { password: 'a-very-long-secret-value-0123456789' } },
      { session: true, sessionPassword: 'a-very-long-secret-value-0123456789' },
      { session: true, secret: 'a-very-long-secret-value-0123456789' },
    ]) {
      let message = ''
      try {
        validateAuthRule(route, value)
      }
      catch (error) {
        expect(error).toBeInstanceOf(TypeError)
        message = (error as Error).message
      }
      expect(message).toMatch(new RegExp(`^${at.replace(/[[\]().*]/g, '\\$&')}\\.(session\\.)?\\w*(password|secret)\\w* must not be set`, 'i'))
      expect(message).toContain('NITRO_WS_PROXY_SESSION_PASSWORD')
      expect(message).toContain('NUXT_WS_PROXY_SESSION_PASSWORD')
      expect(message).not.toContain('a-very-long-secret-value')
    }
    expect(() => validateAuthRule(route, { session: true, password: 'x' }, { passwordEnv: 'MY_PASSWORD' }))
      .toThrow(`${at}.password must not be set: route rules are written in plain text into the build output. Set the session password with the MY_PASSWORD environment variable (runtime config), never in routeRules.`)
  })

  it('names the field and the remedy for every invalid value', () => {
    const cases: Array<[unknown, string]> = [
      ['yes', ` must be an object like { session: true }, { jwt: { ... } } or { hook: true }, true or false (got 'yes').`],
      [[], ` must be an object like { session: true }, { jwt: { ... } } or { hook: true }, true or false (got an array).`],
      [{}, ` must name one method: session: true (a sealed session cookie), jwt: { ... } (a bearer token) or hook: true (the ws-proxy:auth hook decides); or be false for no auth.`],
      [{ session: 'true' }, `.session must be true (require a session with a user) or false (got 'true').`],
      [{ session: true, allowedOrigin: [] }, `.allowedOrigin is not an option. Known options: session, jwt, hook, allowedOrigins, trustProxy, requireUser, userHeader, forwardCookies.`],
      [{ session: true, allowedOrigins: 'https://a.example' }, `.allowedOrigins must be an array of origins like ['https://app.example.com'] (got 'https://a.example').`],
      [{ session: true, allowedOrigins: ['*'] }, `.allowedOrigins[0] must not be '*': that would let any site use the visitor's session cookie. List each origin.`],
      [{ session: true, allowedOrigins: ['https://a.example', 'https://a.example/app'] }, `.allowedOrigins[1] must be an origin like 'https://app.example.com' (scheme, host and optional port; no path or wildcard) (got 'https://a.example/app').`],
      [{ session: true, allowedOrigins: ['a.example'] }, `.allowedOrigins[0] must be an origin like`],
      [{ session: true, allowedOrigins: ['https://*.example.com'] }, `.allowedOrigins[0] must not contain a wildcard (got 'https://*.example.com'): list each origin, like 'https://app.example.com'.`],
      [{ session: true, trustProxy: 'yes' }, `.trustProxy must be a boolean (got 'yes').`],
      [{ session: true, requireUser: ['admin'] }, `.requireUser must be an object of required values, like { role: ['admin', 'staff'] } (got an array).`],
      [{ session: true, requireUser: { role: [] } }, `.requireUser['role'] must not be an empty list (no user could match).`],
      [{ session: true, requireUser: { role: { in: ['a'] } } }, `.requireUser['role'] must be a string, number or boolean, or a list of them (got an object).`],
      [{ session: true, requireUser: { role: null } }, `.requireUser['role'] must be a string, number or boolean, or a list of them (got null).`],
      [{ session: true, requireUser: { 'a..b': 1 } }, `.requireUser has an invalid property path 'a..b': use names separated by dots, like 'org.id'.`],
      [{ session: true, requireUser: { '__proto__.x': 1 } }, `.requireUser has an invalid property path '__proto__.x'`],
      [{ session: true, userHeader: 'x user' }, `.userHeader must be a header name like 'x-ws-proxy-user', or false (got 'x user').`],
      [{ session: true, userHeader: 'Sec-WebSocket-Protocol' }, `.userHeader must not be 'Sec-WebSocket-Protocol': the WebSocket client writes the handshake headers itself. Use a custom name like 'x-ws-proxy-user'.`],
      [{ session: true, userHeader: 'Content-Length' }, `.userHeader must not be 'Content-Length': hop-by-hop and framing headers belong to one connection and are never forwarded. Use a custom name like 'x-ws-proxy-user'.`],
      [{ session: true, userHeader: 'cookie' }, `.userHeader must not be 'cookie'`],
      [{ session: true, forwardCookies: 1 }, `.forwardCookies must be a boolean (got 1).`],
    ]
    for (const [value, message] of cases) {
      expect(() => validateAuthRule(route, value), JSON.stringify(value)).toThrow(`${at}${message}`)
    }
  })

  it('produces a JSON-serialisable rule (it travels through route rules)', () => {
    const rule = validateAuthRule(route, { session: true, requireUser: { role: 'a' }, allowedOrigins: ['https://a.example'] })
    expect(JSON.parse(JSON.stringify(rule))).toEqual(rule)
  })
})

describe('validateAuthRule: jwt and hook', () => {
  const base = { session: false, allowedOrigins: [], requireUser: {}, userHeader: 'x-ws-proxy-user', forwardCookies: false }
  const asymmetric = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']

  it('normalises jwt rules with their defaults', () => {
    expect(validateAuthRule(route, { jwt: true })).toEqual({
      ...base,
      jwt: { from: ['header'], algorithms: ['HS256', 'HS384', 'HS512'], clockTolerance: 5 },
    })
    expect(validateAuthRule(route, { session: false, jwt: {} }).jwt).toEqual({ from: ['header'], algorithms: ['HS256', 'HS384', 'HS512'], clockTolerance: 5 })
    expect(validateAuthRule(route, {
      jwt: {
        jwks: 'https://ID.example.com/.well-known/jwks.json',
        issuer: 'https://id.example.com/',
        audience: ['stream-api', 'stream-api', 'admin-api'],
        from: ['protocol', 'query:access_token', 'header'],
        clockTolerance: 0,
      },
      requireUser: { scope: 'stream' },
    })).toEqual({
      ...base,
      requireUser: { scope: ['stream'] },
      jwt: {
        jwks: 'https://id.example.com/.well-known/jwks.json',
        issuer: ['https://id.example.com/'],
        audience: ['stream-api', 'admin-api'],
        from: ['protocol', 'query:access_token', 'header'],
        algorithms: asymmetric,
        clockTolerance: 0,
      },
    })
    expect(validateAuthRule(route, { jwt: { jwks: 'http://127.0.0.1:8080/jwks', algorithms: ['ES256', 'ML-DSA-65'] } }).jwt!.algorithms).toEqual(['ES256', 'ML-DSA-65'])
    expect(validateAuthRule(route, { jwt: { algorithms: ['HS512'] } }).jwt!.algorithms).toEqual(['HS512'])
    const rule = validateAuthRule(route, { jwt: { jwks: 'https://a.example/jwks', from: ['header', 'protocol'] } })
    expect(JSON.parse(JSON.stringify(rule))).toEqual(rule)
  })

  it('normalises hook rules', () => {
    expect(validateAuthRule(route, { hook: true, allowedOrigins: ['https://app.example.com'] })).toEqual({ ...base, hook: true, allowedOrigins: ['https://app.example.com'] })
    expect(validateAuthRule(route, { hook: false, session: false })).toEqual(base)
    expect(validateAuthRule(route, { jwt: false })).toEqual(base)
  })

  it('names the route and field of every invalid jwt or hook option', () => {
    const cases: Array<[unknown, string]> = [
      [{ session: true, jwt: {} }, ` must name exactly one method of session, jwt and hook (got session and jwt): use one rule per method.`],
      [{ jwt: true, hook: true }, ` must name exactly one method of session, jwt and hook (got jwt and hook): use one rule per method.`],
      [{ session: true, jwt: true, hook: true }, ` must name exactly one method of session, jwt and hook (got session and jwt and hook)`],
      [{ allowedOrigins: [] }, ` must name one method: session: true (a sealed session cookie), jwt: { ... } (a bearer token) or hook: true (the ws-proxy:auth hook decides); or be false for no auth.`],
      [{ hook: 'yes' }, `.hook must be true (the ws-proxy:auth hook sets the user) or false (got 'yes').`],
      [{ jwt: 'https://id.example.com/jwks' }, `.jwt must be an object like { jwks: 'https://id.example.com/.well-known/jwks.json' } or true (got 'https://id.example.com/jwks').`],
      [{ jwt: [] }, `.jwt must be an object like`],
      [{ jwt: { jwk: 'x' } }, `.jwt.jwk is not an option. Known options: jwks, issuer, audience, from, algorithms, clockTolerance.`],
      [{ jwt: { jwks: 'ftp://id.example.com/jwks' } }, `.jwt.jwks must be the http(s) URL of a JSON Web Key Set, like 'https://id.example.com/.well-known/jwks.json' (got 'ftp://id.example.com/jwks').`],
      [{ jwt: { jwks: '/jwks.json' } }, `.jwt.jwks must be the http(s) URL of a JSON Web Key Set`],
      [{ jwt: { jwks: { keys: [] } } }, `.jwt.jwks must be the http(s) URL of a JSON Web Key Set, like 'https://id.example.com/.well-known/jwks.json' (got an object).`],
      [{ jwt: { jwks: 'https://user:pass@id.example.com/jwks' } }, `.jwt.jwks must not contain credentials: route rules are written in plain text into the build output.`],
      [{ jwt: { jwks: 'https://id.example.com/jwks#x' } }, `.jwt.jwks must not contain a #fragment`],
      [{ jwt: { issuer: '' } }, `.jwt.issuer must be a non-empty string, like 'https://id.example.com/' (got '').`],
      [{ jwt: { issuer: [] } }, `.jwt.issuer must be a string or a non-empty list of strings, like 'https://id.example.com/' (got an array).`],
      [{ jwt: { audience: ['a', 1] } }, `.jwt.audience[1] must be a non-empty string, like 'stream-api' (got 1).`],
      [{ jwt: { from: 'header' } }, `.jwt.from must be a non-empty list of transports, like ['header', 'query:access_token', 'protocol'] (got 'header').`],
      [{ jwt: { from: [] } }, `.jwt.from must be a non-empty list of transports`],
      [{ jwt: { from: ['header', 'cookie'] } }, `.jwt.from[1] must be 'header' (Authorization: Bearer), 'protocol' (a base64url.bearer.<token> subprotocol entry) or 'query:<name>' with a parameter name of letters, digits and _.~- (got 'cookie').`],
      [{ jwt: { from: ['query:'] } }, `.jwt.from[0] must be 'header'`],
      [{ jwt: { from: ['query:a b'] } }, `.jwt.from[0] must be 'header'`],
      [{ jwt: { from: ['header', 'header'] } }, `.jwt.from[1] repeats 'header'.`],
      [{ jwt: { algorithms: [] } }, `.jwt.algorithms must be a non-empty list, like ['HS256'] (got an array).`],
      [{ jwt: { jwks: 'https://a.example/j', algorithms: 'RS256' } }, `.jwt.algorithms must be a non-empty list, like ['RS256'] (got 'RS256').`],
      [{ jwt: { algorithms: ['HS256', 'none'] } }, `.jwt.algorithms[1] must not be 'none': an unsigned token would let anyone in.`],
      [{ jwt: { jwks: 'https://a.example/j', algorithms: ['NONE'] } }, `.jwt.algorithms[0] must not be 'none'`],
      [{ jwt: { algorithms: ['HS1'] } }, `.jwt.algorithms[0] must be one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, Ed25519, ML-DSA-44, ML-DSA-65, ML-DSA-87, HS256, HS384, HS512 (got 'HS1').`],
      [{ jwt: { jwks: 'https://a.example/j', algorithms: ['RS256', 'HS256'] } }, `.jwt.algorithms[1] is 'HS256', an HMAC algorithm: it is verified with a shared secret, not with the jwks keys. List asymmetric algorithms (like 'RS256'), or remove jwks and set NITRO_WS_PROXY_JWT_SECRET.`],
      [{ jwt: { algorithms: ['RS256'] } }, `.jwt.algorithms[0] is 'RS256', which needs the issuer's public keys: set jwt.jwks, or use HS256/HS384/HS512 with NITRO_WS_PROXY_JWT_SECRET.`],
      [{ jwt: { algorithms: ['HS256', 'HS256'] } }, `.jwt.algorithms[1] repeats 'HS256'.`],
      [{ jwt: { clockTolerance: -1 } }, `.jwt.clockTolerance must be a number of seconds from 0 to 300 (got -1).`],
      [{ jwt: { clockTolerance: '5s' } }, `.jwt.clockTolerance must be a number of seconds from 0 to 300 (got '5s').`],
      [{ jwt: { clockTolerance: 301 } }, `.jwt.clockTolerance must be a number of seconds from 0 to 300 (got 301).`],
    ]
    for (const [value, message] of cases) {
      expect(() => validateAuthRule(route, value), JSON.stringify(value)).toThrow(`${at}${message}`)
    }
  })

  it('refuses a JWT secret or key in the rule, pointing to the env variable, without echoing it', () => {
    const secret = 'a-very-long-secret-value-0123456789'
    for (const [value, path] of [
      [{ jwt: { secret } }, '.jwt.secret'],
      [{ jwt: { privateKey: secret } }, '.jwt.privateKey'],
      [{ jwt: { key: secret } }, '.jwt.key'],
      [{ jwt: { k: secret } }, '.jwt.k'],
      [{ jwt: {}, secret }, '.secret'],
      [{ jwt: true, jwtSecret: secret }, '.jwtSecret'],
    ] as const) {
      let message = ''
      try {
        validateAuthRule(route, value)
      }
      catch (error) {
        message = (error as Error).message
      }
      expect(message).toBe(`${at}${path} must not be set: route rules are written in plain text into the build output. Set the JWT secret with the NITRO_WS_PROXY_JWT_SECRET (Nuxt: NUXT_WS_PROXY_JWT_SECRET) environment variable (runtime config), or give jwt.jwks the URL of the issuer's public keys; never a key in routeRules.`)
      expect(message).not.toContain(secret)
    }
  })
})

describe('generated code', () => {
  const ctx = { coreEntry: '/c.mjs', runtimeDir: '/r/', useWs: true, envPrefix: 'NITRO_WS_PROXY_X_', framework: 'nuxt' as const, dev: false }
  const rules = normalizeWsProxyRules({
    '/secret/**': { wsProxy: { target: 'ws://up/**', auth: { jwt: true } } },
    '/keys/**': { wsProxy: { target: 'ws://up/**', auth: { jwt: { jwks: 'https://id.example.com/jwks' } } } },
    '/app/**': { wsProxy: { target: 'ws://up/**', auth: { hook: true } } },
    '/jwt': { wsProxy: { name: 'tokens', target: 'ws://up' } },
  })

  it('creates the route auth for every method, with only the settings each needs', () => {
    const [secretRule, keysRule, hookRule] = rules.map(rule => handlerCode(rule, ctx))
    expect(secretRule).toContain('import { createRouteAuth, resolveJwtConfig } from "/r/auth/index.mjs"')
    expect(secretRule).toContain('const { jwt, secretEnv } = resolveJwtConfig(runtimeConfig, "nuxt")')
    expect(secretRule).toContain('  auth: auth,')
    expect(keysRule).toContain('import { createRouteAuth } from "/r/auth/index.mjs"')
    expect(keysRule).toContain('"jwks":"https://id.example.com/jwks"')
    expect(keysRule).not.toContain('resolveJwtConfig')
    expect(hookRule).toContain('callHook: (name, ctx) => useNitroApp().hooks.callHook(name, ctx)')
    expect(hookRule).not.toMatch(/resolve(Jwt|Session)Config/)
    expect(jwtCheckCode(['/secret/**'], { runtimeDir: '/r/', framework: 'nuxt' })).toContain('routes: ["/secret/**"]')
  })

  it('reserves the name jwt (runtimeConfig.wsProxy.jwt holds the secret)', () => {
    expect(() => normalizeWsProxyRules({ '/jwt': { wsProxy: 'ws://up' } }))
      .toThrow(`[nitro-ws-proxy] routeRules['/jwt'].wsProxy: the name 'jwt' is reserved`)
  })
})
