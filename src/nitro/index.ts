export { default, setupWsProxy, handlerCode } from './module'
export { normalizeWsProxyRules, nameFromRoute, type NormalizedWsProxyRule } from './rules'
export type { WsProxyModuleOptions, WsProxyRule, WsProxyRuleOptions, WsProxyRuntimeConfig } from './types'
