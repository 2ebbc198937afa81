export { default } from './module'
export type { ModuleOptions } from './module'
export type { WsProxyModuleOptions, WsProxyRule, WsProxyRuleOptions } from '../nitro/types'
