export { default, setupWsProxy, handlerCode } from './module'
export { normalizeWsProxyRules, nameFromRoute, type NormalizedWsProxyRule } from './rules'
export type { AuthRuleInput, JwtRuleInput, WsProxyAuthContext, WsProxyModuleOptions, WsProxyRule, WsProxyRuleOptions, WsProxyRuntimeConfig, WsProxyShutdownOptions } from './types'
