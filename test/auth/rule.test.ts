/** Build-time validation of `wsProxy.auth` in route rules. */
import { describe, expect, it } from 'vitest'
import { validateAuthRule } from '../../src/nitro/auth-rule'

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
      ['yes', ` must be an object like { session: true }, true or false (got 'yes').`],
      [[], ` must be an object like { session: true }, true or false (got an array).`],
      [{}, `.session must be true (require a session with a user) or false (got undefined). It is the only authentication method, so it is required.`],
      [{ session: 'true' }, `.session must be true (require a session with a user) or false (got 'true').`],
      [{ session: true, allowedOrigin: [] }, `.allowedOrigin is not an option. Known options: session, allowedOrigins, trustProxy, requireUser, userHeader, forwardCookies.`],
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
