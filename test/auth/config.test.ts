/** Password checks and session config resolution (Nitro / Nuxt runtime config). */
import { describe, expect, it } from 'vitest'
import { assertJwtSecret, assertSessionPassword, resolveJwtConfig, resolveSessionConfig } from '../../src/runtime/auth'
import { generatePassword } from './helpers'

describe('assertSessionPassword', () => {
  const remedy = 'to a random string of at least 32 characters (e.g. `openssl rand -base64 32`).'

  it('accepts a string of 32+ characters', () => {
    expect(() => assertSessionPassword({ password: generatePassword() })).not.toThrow()
    expect(() => assertSessionPassword({ password: 'x'.repeat(32) })).not.toThrow()
  })

  it('throws a TypeError naming the variable, never the password', () => {
    expect(() => assertSessionPassword({ password: '' }))
      .toThrow(new TypeError(`[nitro-ws-proxy] A route is protected by wsProxy.auth.session but no session password is set. Set NITRO_WS_PROXY_SESSION_PASSWORD ${remedy}`))
    expect(() => assertSessionPassword(undefined, 'NITRO_WS_PROXY_SESSION_PASSWORD', ['/live/**']))
      .toThrow(`[nitro-ws-proxy] routeRules '/live/**' is protected by wsProxy.auth.session but no session password is set.`)
    expect(() => assertSessionPassword({ password: 'short-secret-31-characters-long' }, ['NUXT_WS_PROXY_SESSION_PASSWORD', 'NUXT_SESSION_PASSWORD'], ['/a/**', '/b']))
      .toThrow(`[nitro-ws-proxy] routeRules '/a/**', '/b' are protected by wsProxy.auth.session but the session password is shorter than 32 characters. Set NUXT_WS_PROXY_SESSION_PASSWORD or NUXT_SESSION_PASSWORD ${remedy}`)
    expect(() => assertSessionPassword({ password: 12345678901234567890123456789012345 }))
      .toThrow('the session password is not a string (an all-digit value is read as a number: include letters)')
    try {
      assertSessionPassword({ password: 'short-secret' })
    }
    catch (error) {
      expect((error as Error).message).not.toContain('short-secret')
    }
  })
})

describe('resolveSessionConfig', () => {
  it('nitro: runtimeConfig.wsProxy.session, cookie h3, env fallback', () => {
    expect(resolveSessionConfig({ wsProxy: { session: { password: 'p'.repeat(32), name: '', maxAge: 0 } } }, 'nitro', {}))
      .toEqual({ session: { password: 'p'.repeat(32), name: 'h3', maxAge: undefined, seal: undefined }, passwordEnv: ['NITRO_WS_PROXY_SESSION_PASSWORD'] })
    expect(resolveSessionConfig({}, 'nitro', { NITRO_WS_PROXY_SESSION_PASSWORD: 'e'.repeat(32) }).session)
      .toMatchObject({ password: 'e'.repeat(32), name: 'h3' })
    expect(resolveSessionConfig({ wsProxy: { session: { name: 'sid', maxAge: '3600' } } }, 'nitro', {}).session)
      .toMatchObject({ password: undefined, name: 'sid', maxAge: 3600 })
  })

  it('nuxt: own password first, then nuxt-auth-utils (env, then runtimeConfig.session), cookie nuxt-session', () => {
    const app = { session: { name: 'nuxt-session', password: 'a'.repeat(32), maxAge: 600, cookie: { sameSite: 'lax' } } }
    expect(resolveSessionConfig({ ...app, wsProxy: { session: { password: '' } } }, 'nuxt', {}))
      .toEqual({
        session: { password: 'a'.repeat(32), name: 'nuxt-session', maxAge: 600, seal: undefined },
        passwordEnv: ['NUXT_WS_PROXY_SESSION_PASSWORD', 'NUXT_SESSION_PASSWORD'],
      })
    expect(resolveSessionConfig(app, 'nuxt', { NUXT_SESSION_PASSWORD: 'b'.repeat(32) }).session.password).toBe('b'.repeat(32))
    expect(resolveSessionConfig(app, 'nuxt', { NUXT_SESSION_PASSWORD: 'b'.repeat(32), NUXT_WS_PROXY_SESSION_PASSWORD: 'c'.repeat(32) }).session.password).toBe('c'.repeat(32))
    expect(resolveSessionConfig({ ...app, wsProxy: { session: { password: 'd'.repeat(32), name: 'ws' } } }, 'nuxt', { NUXT_SESSION_PASSWORD: 'b'.repeat(32) }).session)
      .toMatchObject({ password: 'd'.repeat(32), name: 'ws', maxAge: 600 })
    expect(resolveSessionConfig({}, 'nuxt', {}).session).toMatchObject({ password: undefined, name: 'nuxt-session' })
    expect(resolveSessionConfig({ nitro: { envPrefix: 'APP_' } }, 'nuxt', { APP_SESSION_PASSWORD: 'f'.repeat(32) }))
      .toMatchObject({ session: { password: 'f'.repeat(32) }, passwordEnv: ['NUXT_WS_PROXY_SESSION_PASSWORD', 'APP_SESSION_PASSWORD'] })
  })
})

describe('the JWT secret', () => {
  it('resolves from runtime config, else the env variable of the framework', () => {
    expect(resolveJwtConfig({ wsProxy: { jwt: { secret: 's'.repeat(32) } } }, 'nitro', { NITRO_WS_PROXY_JWT_SECRET: 'e'.repeat(32) }))
      .toEqual({ jwt: { secret: 's'.repeat(32) }, secretEnv: 'NITRO_WS_PROXY_JWT_SECRET' })
    expect(resolveJwtConfig({ wsProxy: { jwt: { secret: '' } } }, 'nitro', { NITRO_WS_PROXY_JWT_SECRET: 'e'.repeat(32) }).jwt.secret).toBe('e'.repeat(32))
    expect(resolveJwtConfig({}, 'nuxt', { NITRO_WS_PROXY_JWT_SECRET: 'e'.repeat(32), NUXT_WS_PROXY_JWT_SECRET: 'n'.repeat(32) }))
      .toEqual({ jwt: { secret: 'n'.repeat(32) }, secretEnv: 'NUXT_WS_PROXY_JWT_SECRET' })
    expect(resolveJwtConfig(undefined, 'nitro', {}).jwt.secret).toBeUndefined()
  })

  it('must be a string of at least 32 bytes; the message names the variable, never the secret', () => {
    expect(() => assertJwtSecret({ secret: 'é'.repeat(16) })).not.toThrow()
    expect(() => assertJwtSecret({ secret: '' }, 'NUXT_WS_PROXY_JWT_SECRET', ['/a/**', '/b']))
      .toThrow(new TypeError(`[nitro-ws-proxy] routeRules '/a/**', '/b' are protected by wsProxy.auth.jwt without jwks but no JWT secret is set. Set NUXT_WS_PROXY_JWT_SECRET to the secret the token issuer signs with (HS256/384/512), at least 32 characters (e.g. \`openssl rand -base64 32\`), or give the rule a jwks URL.`))
    expect(() => assertJwtSecret({ secret: 1234 })).toThrow('the JWT secret is not a string (an all-digit value is read as a number: include letters)')
    expect(() => assertJwtSecret({ secret: 'short-secret' })).toThrow(/^(?!.*short-secret).*shorter than 32 bytes/)
    expect(() => assertJwtSecret(undefined)).toThrow('[nitro-ws-proxy] A route is protected by wsProxy.auth.jwt without jwks but no JWT secret is set. Set NITRO_WS_PROXY_JWT_SECRET')
  })
})
