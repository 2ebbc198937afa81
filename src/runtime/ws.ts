/**
 * The upstream client on Node presets: `ws` sends the handshake headers (`x-forwarded-*`,
 * `headers`, auth identity) and dials `ws+unix:` targets, which the WHATWG `WebSocket` cannot.
 * Imported only by the generated handlers of Node presets, so other bundles never include `ws`.
 */
export { WebSocket } from 'ws'
