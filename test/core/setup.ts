/**
 * Shared setup of the core suite: build the proxy under test from its source and mount it on
 * the crossws line of the current `describe.each` case.
 */
import type { WebSocketProxy, WebSocketProxyOptions } from '../../src/core/types'
import { createWebSocketProxy } from '../../src/index'
import { type CrosswsLine, type TestClient, ctorOption, startProxy } from '../helpers'

export { createWebSocketProxy }

/**
 * `createWebSocketProxy({ ...ctorOption(), ...options })` mounted on the given crossws line.
 * `options.WebSocket` overrides the constructor chosen by `PROXY_UPSTREAM_CTOR`.
 */
export async function proxied(line: CrosswsLine, options: WebSocketProxyOptions) {
  const proxy: WebSocketProxy = createWebSocketProxy({ ...ctorOption(), ...options })
  const server = await startProxy(proxy, { crossws: line })
  return { proxy, server }
}

/**
 * Sends `text` and expects the same payload back: "the relay works". It does not check the
 * frame type, so one type bug fails fidelity.test.ts and not every other file.
 */
export async function expectEcho(client: TestClient, text: string): Promise<void> {
  client.send(text)
  const message = await client.next()
  if (message.text !== text) {
    throw new Error(`Expected the echo ${JSON.stringify(text)}, got ${JSON.stringify(message.text)}`)
  }
}

/** Whether `value` is an RFC 7230 token (the grammar of a subprotocol name). */
export function isToken(value: string): boolean {
  return /^[!#$%&'*+\-.^\w`|~]+$/.test(value)
}

/** Splits a `sec-websocket-protocol` header value into its offered names. */
export function splitProtocols(header: string | string[] | undefined): string[] {
  if (header === undefined) return []
  return [header].flat().join(',').split(',').map(part => part.trim()).filter(Boolean)
}
