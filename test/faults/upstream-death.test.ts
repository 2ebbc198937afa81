/**
 * An upstream process that dies (SIGKILL) or freezes (SIGSTOP) under a client: the client is
 * closed with 1011 promptly, its connection is released, and a bystander on the same proxy
 * keeps working.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { CROSSWS_LINES, cleanup, sleep, usesWsCtor, waitFor, withTimeout, wsConnect } from '../helpers'
import { closeBystander, faultRig, startUpstreamProcess } from './harness'

afterEach(() => cleanup())

describe.each(CROSSWS_LINES)('crossws %s: an upstream process that dies or freezes', (line) => {
  it('killed mid-stream (SIGKILL): the client gets 1011 promptly and the connection is released', async () => {
    const upstream = await startUpstreamProcess()
    const rig = await faultRig(line, upstream.url)
    const client = await wsConnect(`${rig.server.url}/stream`)
    client.send('stream')
    await waitFor(() => client.messages.length >= 50, { timeout: 3_000, label: '50 streamed frames', describe: () => client.messages.length })

    const killedAt = Date.now()
    upstream.signal('SIGKILL')
    const closed = await withTimeout(client.closed, 2_000, 'client close after SIGKILL')

    expect(await withTimeout(upstream.exited, 1_000, 'upstream exit')).toBe('SIGKILL')
    expect(closed.code).toBe(1011)
    expect(closed.at - killedAt).toBeLessThan(1_000)
    // The stream was intact up to the kill: frame i carries sequence number i.
    expect(client.messages.findIndex((message, i) => message.data.readUInt32BE(0) !== i)).toBe(-1)
    await waitFor(() => rig.proxy.stats().open === 1, { label: 'only the bystander left open', describe: () => rig.proxy.stats() })
    const { closed: causes } = rig.proxy.stats()
    expect(causes.upstream + causes['upstream-error']).toBe(1)

    await rig.expectHealthy()
    await closeBystander(rig)
  }, 15_000)

  it.runIf(usesWsCtor)('frozen mid-stream (SIGSTOP) with short heartbeats: the client gets 1011 "Upstream heartbeat timeout"', async () => {
    const upstream = await startUpstreamProcess()
    const rig = await faultRig(line, upstream.url, { heartbeatInterval: 100, heartbeatTimeout: 100 })
    const client = await wsConnect(`${rig.server.url}/stream`)
    client.send('stream')
    await waitFor(() => client.messages.length >= 50, { timeout: 3_000, label: '50 streamed frames', describe: () => client.messages.length })
    expect(await upstream.connections()).toBe(1)

    const frozenAt = Date.now()
    upstream.signal('SIGSTOP')
    const closed = await withTimeout(client.closed, 3_000, 'client close after SIGSTOP')

    expect([closed.code, closed.reason]).toEqual([1011, 'Upstream heartbeat timeout'])
    // A ping every 100 ms, 100 ms to answer: detected within a few rounds.
    expect(closed.at - frozenAt).toBeLessThan(1_500)
    expect(rig.proxy.stats().closed['upstream-heartbeat']).toBe(1)
    await waitFor(() => rig.proxy.stats().open === 1, { label: 'only the bystander left open', describe: () => rig.proxy.stats() })

    // Thawed, the upstream finds its leg closed by the proxy.
    upstream.signal('SIGCONT')
    let connections = await upstream.connections()
    for (let i = 0; i < 40 && connections !== 0; i++) { // at most 2 s
      await sleep(50)
      connections = await upstream.connections()
    }
    expect(connections).toBe(0)

    await rig.expectHealthy()
    await closeBystander(rig)
  }, 15_000)
})
