/**
 * A client that resets mid-handshake, after `upgrade` took its slot and before `open`: the slot
 * comes back. crossws 0.3 shows `upgrade` the client's socket, whose `close` gives the slot back
 * at once; crossws 0.4's node adapter does not, and the slot waits for UNCLAIMED_MS (10 s).
 */
import type { CrosswsLine } from '../helpers'
import { afterEach, describe, expect, it } from 'vitest'
import { UNCLAIMED_MS } from '../../src/core/limits'
import { cleanup, CROSSWS_LINES, rawUpgrade, sleep, startUpstream, waitFor, wsConnect } from '../helpers'
import { echo, expectRefused, limitedProxy, limitsOf, startUpgrade, waitLimits, ZERO } from './harness'

afterEach(() => cleanup())

const CAPS = { connections: 1, perIp: 1, perUser: 1 }

/** A gate the wrapped `upgrade` waits on, opened by the test. */
function gate() {
  let open!: () => void
  const opened = new Promise<void>((resolve) => { open = resolve })
  let waiting = false
  return { open, wait: async () => { waiting = true; await opened }, get waiting() { return waiting } }
}

async function rig(line: CrosswsLine, where: 'before' | 'after') {
  const upstream = await startUpstream()
  const g = gate()
  let first = true
  const pause = async () => {
    if (!first) return
    first = false
    await g.wait()
  }
  const { proxy, server, counts } = await limitedProxy(line, { target: upstream.url, limits: CAPS }, {
    user: () => ({ id: 'alice' }),
    // On crossws 0.4 the address comes from the context (see caps.test.ts "perIp").
    clientAddress: line === '0.4' ? () => '127.0.0.1' : undefined,
    [where]: pause,
  })
  return { upstream, proxy, server, counts, gate: g }
}

describe('a client that resets mid-handshake, before open', () => {
  it('crossws 0.3: the slot comes back as soon as the client socket closes, while `upgrade` is still pending', async () => {
    const { upstream, proxy, server, counts, gate } = await rig('0.3', 'after')
    const pending = startUpgrade(server.url)
    await waitFor(() => gate.waiting, { label: 'upgrade reached the gate' })
    expect(limitsOf(proxy)).toEqual({ connections: 1, addresses: 1, users: 1 })
    const resetAt = Date.now()
    pending.socket.resetAndDestroy()
    await waitFor(() => limitsOf(proxy).connections === 0, { interval: 1, timeout: 1_000, label: 'slot back after the reset' })
    const releasedIn = Date.now() - resetAt
    expect(releasedIn).toBeLessThan(100)
    expect(limitsOf(proxy)).toEqual(ZERO)
    gate.open()
    expect(await pending.answer).toBe('closed')
    await sleep(50)
    // Never opened, never dialled, nothing counted twice.
    expect(counts.opens).toBe(0)
    expect(upstream.handshakes.length).toBe(0)
    expect(proxy.stats().open).toBe(0)
    expect(limitsOf(proxy)).toEqual(ZERO)
    const next = await wsConnect(server.url)
    await echo(next, 'next')
    expect(limitsOf(proxy)).toEqual({ connections: 1, addresses: 1, users: 1 })
  })

  it('crossws 0.3: a client that resets while a wrapper awaits before `proxy.upgrade` (an auth check) does not hold a slot', async () => {
    const { upstream, proxy, server, counts, gate } = await rig('0.3', 'before')
    const pending = startUpgrade(server.url)
    await waitFor(() => gate.waiting, { label: 'upgrade reached the gate' })
    pending.socket.resetAndDestroy()
    expect(await pending.answer).toBe('closed')
    await sleep(20) // the server side has seen the reset
    gate.open()
    await sleep(20)
    expect(counts.opens).toBe(0)
    expect(upstream.handshakes.length).toBe(0)
    // The socket was closed before `proxy.upgrade` reserved: nothing should stay reserved.
    await waitLimits(proxy, ZERO, 'the socket was already closed when proxy.upgrade ran', 1_000)
    const next = await wsConnect(server.url)
    await echo(next, 'next')
  })

  // Costs UNCLAIMED_MS (10 s) of waiting, mostly idle: runs in parallel with the other files.
  it(`crossws 0.4: the slot comes back within UNCLAIMED_MS (${UNCLAIMED_MS} ms), and not before the upgrade ends`, { timeout: UNCLAIMED_MS + 8_000 }, async () => {
    const { upstream, proxy, server, counts, gate } = await rig('0.4', 'after')
    const pending = startUpgrade(server.url)
    await waitFor(() => gate.waiting, { label: 'upgrade reached the gate' })
    const reservedAt = Date.now()
    pending.socket.resetAndDestroy()
    expect(await pending.answer).toBe('closed')
    await sleep(50) // the server side has seen the reset: `ws` will not complete this upgrade
    gate.open()
    await sleep(200)
    expect(counts.opens).toBe(0)
    expect(upstream.handshakes.length).toBe(0)
    // Documented: crossws 0.4 shows `upgrade` no socket to watch; the timer gives the slot back.
    expect(limitsOf(proxy).connections).toBe(1)
    await waitLimits(proxy, ZERO, 'UNCLAIMED_MS after the upgrade', UNCLAIMED_MS + 2_000)
    const heldFor = Date.now() - reservedAt
    expect(heldFor).toBeGreaterThanOrEqual(UNCLAIMED_MS - 100)
    expect(heldFor).toBeLessThan(UNCLAIMED_MS + 1_500)
    const next = await wsConnect(server.url)
    await echo(next, 'next')
  })
})

describe.each(CROSSWS_LINES)('upgrades refused after `proxy.upgrade` took a slot (crossws %s)', (line) => {
  // `ws` checks the handshake (key, version) after the `upgrade` hook accepted it, and answers
  // 400 itself: `open` never comes. The socket is closed right after that answer.
  it('malformed handshakes that `ws` answers 400 hold no slot (else a few cheap requests fill the cap)', async () => {
    const upstream = await startUpstream()
    const { proxy, server, counts } = await limitedProxy(line, { target: upstream.url, limits: { connections: 2 } })
    expect((await rawUpgrade(server.url, { 'Sec-WebSocket-Key': 'not-a-key' })).status).toBe(400)
    expect((await rawUpgrade(server.url, { 'Sec-WebSocket-Version': '12' })).status).toBe(400)
    expect(counts.opens).toBe(0)
    expect(upstream.handshakes.length).toBe(0)
    await waitLimits(proxy, ZERO, 'after two 400s from ws', 1_000)
    const a = await wsConnect(server.url)
    const b = await wsConnect(server.url)
    await echo(a, 'a')
    await echo(b, 'b')
    await expectRefused(server.url, 'connections', upstream)
  })

  it('an upgrade that fails with 500 after the slot was taken (a protocolOffer that throws) gives it back', async () => {
    const upstream = await startUpstream()
    const { proxy, server } = await limitedProxy(line, {
      target: upstream.url,
      limits: { connections: 1 },
      protocolOffer: (offer) => {
        if (offer.includes('boom')) throw new Error('protocolOffer failed')
        return offer
      },
    })
    expect((await rawUpgrade(server.url, { 'Sec-WebSocket-Protocol': 'boom' })).status).toBe(500)
    await waitLimits(proxy, ZERO, 'after the 500', 1_000)
    await echo(await wsConnect(server.url, { protocols: 'chat' }), 'next')
  })
})
