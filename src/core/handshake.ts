/**
 * What a connection needs from the upgrade request, read while the request can still be read.
 *
 * `Deno.serve` closes the upgrade `Request` (and its connection info) once the 101 is sent:
 * reading its headers in `open` throws `TypeError: Request closed`. On Deno the proxy therefore
 * keeps a snapshot taken during `upgrade` (URL, headers, client address, subprotocol offer) and
 * hands that to `target`, `headers` and the callbacks. Requests elsewhere (Node, Bun) stay
 * readable, so their connections skip the copy.
 */
import type { ProxyPeer } from './types'
import { getNodeRequest, getUpgradeRemoteAddress } from './fence'

/** Context key of the {@link Handshake} taken during `upgrade`. */
export const kHandshake = Symbol.for('nitro-ws-proxy.handshake')

/** The upgrade as the connection sees it after the 101. */
export interface Handshake {
  /** The upgrade request, with `url` and `headers` answered from the snapshot. */
  request: Request
  remoteAddress: string | undefined
  /** The client's subprotocol offer (when forwarded). */
  offer: string[] | undefined
}

const closesRequests = typeof (globalThis as { Deno?: unknown }).Deno !== 'undefined'

/** A snapshot of `request` when the runtime closes it after the 101 (Deno), else `undefined`. */
export function takeHandshake(request: Request, offer: string[] | undefined): Handshake | undefined {
  if (!closesRequests || getNodeRequest(request)) return undefined
  return { request: snapshotRequest(request), remoteAddress: getUpgradeRemoteAddress(request), offer }
}

/** The peer a connection resolves its target and headers with, from a snapshot. */
export function peerFromHandshake(handshake: Handshake, context: Record<string, unknown>, remoteAddress: () => string | undefined): ProxyPeer {
  let address = handshake.remoteAddress
  if (address === undefined) {
    try { address = remoteAddress() }
    catch {}
  }
  return { request: handshake.request, context, remoteAddress: address }
}

function snapshotRequest(request: Request): Request {
  const url = request.url
  const headers = new Headers(request.headers)
  return new Proxy(request, {
    get(target, property) {
      if (property === 'url') return url
      if (property === 'headers') return headers
      const value = Reflect.get(target, property, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}
