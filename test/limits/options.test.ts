/**
 * `limits` validation: the core throws a TypeError naming the field (`limits.perIp`); a rule's
 * error names the route and the field (`routeRules['/live/**'].wsProxy.limits.perIp`), and the
 * runtime check of an env value names the runtime config key and its env variable.
 */
import { describe, expect, it } from 'vitest'
import { createWebSocketProxy } from '../../src/index'
import { normalizeWsProxyRules } from '../../src/nitro/rules'
import { checkRuleOptions } from '../../src/runtime/options'
import { WsWebSocket } from '../helpers'

const target = 'ws://127.0.0.1:1'

function coreError(limits: unknown): unknown {
  try {
    createWebSocketProxy({ target, WebSocket: WsWebSocket, limits: limits as never })
  }
  catch (error) {
    return error
  }
  return undefined
}

function ruleError(limits: unknown, route = '/live/**'): unknown {
  try {
    normalizeWsProxyRules({ [route]: { wsProxy: { target: 'ws://127.0.0.1:1/**', limits } } })
  }
  catch (error) {
    return error
  }
  return undefined
}

const BAD_VALUES: Array<[field: string, value: unknown]> = [
  ['connections', 0],
  ['connections', -1],
  ['connections', 1.5],
  ['perIp', 0],
  ['perIp', 2.5],
  ['perIp', '5'],
  ['perUser', Number.NaN],
  ['perUser', Number.POSITIVE_INFINITY],
  ['messagesPerSecond', 0],
  ['messagesPerSecond', -3],
  ['messagesPerSecond', true],
  ['bytesPerSecond', 0],
  ['bytesPerSecond', '1mb'],
]

describe('core: createWebSocketProxy({ limits })', () => {
  it.each(BAD_VALUES)('limits.%s = %o throws a TypeError naming the field', (field, value) => {
    const error = coreError({ [field]: value })
    expect(error).toBeInstanceOf(TypeError)
    expect((error as Error).message).toContain(`\`limits.${field}\``)
    expect((error as Error).message).toMatch(/must be a positive (integer|number)/)
  })

  it('an unknown key is named, with the known ones', () => {
    const error = coreError({ perIP: 5 })
    expect(error).toBeInstanceOf(TypeError)
    expect((error as Error).message).toContain('`limits.perIP`')
    expect((error as Error).message).toContain('connections, perIp, perUser, messagesPerSecond, bytesPerSecond')
  })

  it.each([[null], [5], ['x'], [[]]])('limits = %o is not an object', (value) => {
    const error = coreError(value)
    expect(error).toBeInstanceOf(TypeError)
    expect((error as Error).message).toContain('`limits`')
  })

  it('accepts fractional rates, integer caps, an empty object and undefined entries', () => {
    expect(coreError({ messagesPerSecond: 0.5, bytesPerSecond: 1.5, connections: 1, perIp: 1, perUser: 1 })).toBeUndefined()
    expect(coreError({})).toBeUndefined()
    expect(coreError({ perIp: undefined })).toBeUndefined()
    const proxy = createWebSocketProxy({ target, WebSocket: WsWebSocket, limits: {} })
    expect(proxy.stats().limits).toBeUndefined()
    expect(proxy.stats().refused).toEqual({})
    expect(proxy.stats().limited).toEqual({ connections: 0, perIp: 0, perUser: 0, messageRate: 0, byteRate: 0 })
    const capped = createWebSocketProxy({ target, WebSocket: WsWebSocket, limits: { perUser: 3 } })
    expect(capped.stats().limits).toEqual({ connections: 0, addresses: 0, users: 0 })
  })
})

describe('rules: routeRules[route].wsProxy.limits', () => {
  it.each(BAD_VALUES)('limits.%s = %o names the route and the field', (field, value) => {
    const error = ruleError({ [field]: value })
    expect(error).toBeInstanceOf(TypeError)
    expect((error as Error).message).toContain(`routeRules['/live/**'].wsProxy.limits.${field} must be a positive`)
  })

  it('an unknown key, a non-object and a broken JSON string name the route and field', () => {
    expect((ruleError({ perip: 1 }) as Error).message).toContain(`routeRules['/live/**'].wsProxy.limits.perip is not a limit; known limits: connections, perIp`)
    expect((ruleError([1]) as Error).message).toContain(`routeRules['/live/**'].wsProxy.limits must be an object`)
    expect((ruleError(7) as Error).message).toContain(`routeRules['/live/**'].wsProxy.limits must be an object`)
    expect((ruleError('{"perIp": ') as Error).message).toContain(`routeRules['/live/**'].wsProxy.limits looks like a JSON object but does not parse`)
    // The kebab-case key is named as written.
    let error: unknown
    try { normalizeWsProxyRules({ '/chat': { 'ws-proxy': { target: 'ws://127.0.0.1:1', limits: { connections: 0 } } } }) }
    catch (e) { error = e }
    expect((error as Error).message).toContain(`routeRules['/chat']['ws-proxy'].limits.connections must be a positive integer`)
  })

  it('valid limits are kept in the runtime entry; false and unset entries mean none', () => {
    const [rule] = normalizeWsProxyRules({ '/live/**': { wsProxy: { target: 'ws://127.0.0.1:1/**', limits: { perIp: 50, messagesPerSecond: 100 } } } })
    expect(rule!.runtime.limits).toEqual({ perIp: 50, messagesPerSecond: 100 })
    expect(ruleError(false)).toBeUndefined()
    expect(ruleError({ perIp: null, perUser: '' })).toBeUndefined()
    const checked = checkRuleOptions({ target: 'ws://127.0.0.1:1', limits: { perIp: null, perUser: 2 } }, key => key)
    expect(checked.proxy.limits).toEqual({ perUser: 2 })
    expect(checkRuleOptions({ target: 'ws://127.0.0.1:1', limits: false }, key => key).proxy.limits).toBeUndefined()
    expect(checkRuleOptions({ target: 'ws://127.0.0.1:1', limits: '' }, key => key).proxy.limits).toBeUndefined()
  })

  it('module defaults apply limits to every rule, and a rule\'s own limits win', () => {
    const rules = normalizeWsProxyRules({
      '/a/**': { wsProxy: 'ws://127.0.0.1:1/**' },
      '/b/**': { wsProxy: { target: 'ws://127.0.0.1:1/**', limits: { perIp: 1 } } },
    }, { limits: { perIp: 10, messagesPerSecond: 5 } })
    expect(rules.map(rule => rule.runtime.limits)).toEqual([{ perIp: 10, messagesPerSecond: 5 }, { perIp: 1 }])
    expect(() => normalizeWsProxyRules({ '/a/**': { wsProxy: 'ws://127.0.0.1:1/**' } }, { limits: { perIp: -1 } }))
      .toThrow(`routeRules['/a/**'].wsProxy.limits.perIp must be a positive integer`)
  })

  it('runtime: an env JSON value is parsed and checked, errors name the runtime key and env variable', () => {
    const field = (key: string) => `runtimeConfig.wsProxy.live.${key} (env NITRO_WS_PROXY_LIVE_${key.split('.')[0]!.toUpperCase()}) of route /live/**`
    expect(checkRuleOptions({ target: 'ws://127.0.0.1:1', limits: '{"perIp":3,"bytesPerSecond":1000}' }, field).proxy.limits).toEqual({ perIp: 3, bytesPerSecond: 1000 })
    expect(() => checkRuleOptions({ target: 'ws://127.0.0.1:1', limits: '{"perIp":0}' }, field))
      .toThrow('runtimeConfig.wsProxy.live.limits.perIp (env NITRO_WS_PROXY_LIVE_LIMITS) of route /live/** must be a positive integer, got 0')
    expect(() => checkRuleOptions({ target: 'ws://127.0.0.1:1', limits: '{perIp:1}' }, field))
      .toThrow('runtimeConfig.wsProxy.live.limits (env NITRO_WS_PROXY_LIVE_LIMITS) of route /live/** looks like a JSON object but does not parse')
  })
})
