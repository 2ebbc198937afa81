/**
 * Passive health with real dead backends: an upstream process SIGKILLed while clients keep
 * connecting (every new connection succeeds; with `maxFails: 1` the dead one gets no dial after
 * its first failure), brought back on the same port (after `failTimeout`: one trial dial, then
 * connections again), and one frozen with SIGSTOP (accepts TCP, never answers: each dial to it
 * costs `connectTimeout`, then it is skipped).
 *
 * With a WHATWG upstream constructor (`PROXY_UPSTREAM_CTOR=global`) a refused dial cannot be
 * told from a 4xx refusal, so it counts in `failedDials` but not against health: the dead
 * upstream stays `healthy` and keeps being dialled (every client still gets in by failing over),
 * and a restarted one takes connections again at once. Connect timeouts (SIGSTOP) still take an
 * upstream out, so that scenario and the timeout-based trial run the same in both modes.
 */
import type { TestClient } from '../helpers'
import { afterEach, describe, expect, it } from 'vitest'
import { CROSSWS_LINES, cleanup, sleep, startUpstream, usesWsCtor, waitFor, withTimeout, wsConnect } from '../helpers'
import { echoAll, keyOf, openMany, poolProxy, startChildUpstream } from './harness'

afterEach(() => cleanup())

describe.each(CROSSWS_LINES)('passive health on crossws %s', (line) => {
  it(usesWsCtor
    ? 'SIGKILL: 300 new connections all succeed; the dead upstream is dialled once (maxFails 1, long failTimeout)'
    : 'WHATWG upstream, SIGKILL: 300 new connections all succeed by failing over; the dead upstream keeps being dialled and stays healthy', async () => {
    const victim = await startChildUpstream()
    const a = await startUpstream()
    const b = await startUpstream()
    const { proxy, server } = await poolProxy(line, { target: [victim.url, a.url, b.url], maxFails: 1, failTimeout: 60_000 })
    const before = await openMany(server.url, 30, { concurrency: 30 })
    await echoAll(before)
    expect((await victim.counts()).connections).toBe(10)
    const victimKey = keyOf(victim.url)

    victim.signal('SIGKILL')
    expect(await withTimeout(victim.exited, 2_000, 'victim exit')).toBe('SIGKILL')
    // Its ten clients are closed (1011); the pool no longer counts them.
    await waitFor(() => proxy.stats().upstreams[victimKey]!.open === 0 && proxy.stats().open === 20, {
      timeout: 3_000,
      label: 'the dead upstream released',
      describe: () => proxy.stats().upstreams,
    })
    const orphans = await Promise.all(before.map(client => withTimeout(Promise.race([client.closed, sleep(200).then(() => undefined)]), 1_000, 'close')))
    expect(orphans.filter(Boolean).map(c => c!.code)).toEqual(Array(10).fill(1011))

    // Fewest connections: the next client is sent to the dead one and fails over; ws: that takes
    // it out; WHATWG: counted as a failed dial only, it stays in service.
    const first = await wsConnect(server.url)
    await echoAll([first])
    expect(proxy.stats().upstreams[victimKey]).toEqual({ open: 0, opened: 10, failedDials: 1, healthy: !usesWsCtor })

    // 299 more, in sequential batches of 23: 100 % open and echo; ws: the dead one is not dialled
    // again; WHATWG: it is (the first pick of every batch at least: it has the fewest connections).
    const started = Date.now()
    let ok = 1
    for (let batch = 0; batch < 13; batch++) {
      const clients = await openMany(server.url, 23, { concurrency: 23 })
      await echoAll(clients)
      ok += clients.length
    }
    const elapsed = Date.now() - started
    console.info(`[pool] SIGKILL (crossws ${line}): ${ok}/300 new connections echoed in ${elapsed} ms; dead upstream failedDials ${proxy.stats().upstreams[victimKey]!.failedDials}`)
    expect(ok).toBe(300)
    const stats = proxy.stats()
    if (usesWsCtor) {
      expect(stats.upstreams[victimKey]).toEqual({ open: 0, opened: 10, failedDials: 1, healthy: false })
    }
    else {
      expect(stats.upstreams[victimKey]).toMatchObject({ open: 0, opened: 10, healthy: true })
      expect(stats.upstreams[victimKey]!.failedDials).toBeGreaterThanOrEqual(1 + 13)
      expect(stats.closed['connect-timeout']).toBe(0)
    }
    expect(stats.upstreams[a.url]!.open + stats.upstreams[b.url]!.open).toBe(320)
    expect(a.connections + b.connections).toBe(320)
    expect(stats.closed.upstream + stats.closed['upstream-error']).toBe(10)
    expect(stats.open).toBe(320)
  }, 30_000)

  // ws only: with a WHATWG constructor a refused dial never takes the upstream out (no failTimeout
  // window, no trial); the WHATWG counterpart follows.
  it.runIf(usesWsCtor)('restarted on the same port: after failTimeout one trial dial, then connections again', async () => {
    const failTimeout = 1_000
    let victim = await startChildUpstream()
    const port = victim.port
    const a = await startUpstream()
    const b = await startUpstream()
    const { proxy, server } = await poolProxy(line, { target: [victim.url, a.url, b.url], maxFails: 1, failTimeout })
    const key = keyOf(victim.url)
    victim.signal('SIGKILL')
    await withTimeout(victim.exited, 2_000, 'victim exit')

    // First failure.
    const held: TestClient[] = [await wsConnect(server.url)]
    await echoAll(held)
    expect(proxy.stats().upstreams[key]!.failedDials).toBe(1)
    // Within failTimeout: no dial at all.
    held.push(...await openMany(server.url, 10, { concurrency: 10 }))
    await echoAll(held)
    expect(proxy.stats().upstreams[key]!.failedDials).toBe(1)

    // After failTimeout, still dead: ten clients at once, exactly one trial dial among them.
    await sleep(failTimeout + 150)
    const trialBatchStarted = Date.now()
    held.push(...await openMany(server.url, 10, { concurrency: 10 }))
    await echoAll(held)
    expect(proxy.stats().upstreams[key]).toMatchObject({ failedDials: 2, opened: 0, healthy: false })

    // Back on the same port; still out of service until its failTimeout ends.
    victim = await startChildUpstream(port)
    expect(victim.url).toBe(key)
    const early = await openMany(server.url, 5, { concurrency: 5 })
    await echoAll(early)
    held.push(...early)
    const earlyDone = Date.now()
    if (earlyDone < trialBatchStarted + failTimeout) {
      expect((await victim.counts()).accepted).toBe(0)
    }
    else {
      console.info(`[pool] restart (crossws ${line}): the early batch ended ${earlyDone - trialBatchStarted} ms after the trial batch started (window ${failTimeout} ms): its check skipped`)
    }

    await sleep(Math.max(0, trialBatchStarted + failTimeout - Date.now()) + failTimeout + 150)
    // One trial dial, which opens: back in service.
    const trial = await wsConnect(server.url)
    await echoAll([trial])
    expect((await victim.counts()).accepted).toBe(1)
    expect(proxy.stats().upstreams[key]).toEqual({ open: 1, opened: 1, failedDials: 2, healthy: true })
    // Then it takes connections again: with the fewest, most of the next 20.
    const after = await openMany(server.url, 20, { concurrency: 20 })
    await echoAll(after)
    const { accepted, connections } = await victim.counts()
    console.info(`[pool] restart (crossws ${line}): after the trial, the restarted upstream took ${accepted - 1} of the next 20 (open there: ${connections}; others ${a.connections}/${b.connections})`)
    expect(accepted).toBeGreaterThanOrEqual(11)
    expect(proxy.stats().upstreams[key]).toMatchObject({ opened: accepted, failedDials: 2, healthy: true })
  }, 30_000)

  it.skipIf(usesWsCtor)('WHATWG upstream, restarted on the same port: dialled all along while dead (healthy, every client fails over), then takes connections again at once', async () => {
    const victim = await startChildUpstream()
    const port = victim.port
    const a = await startUpstream()
    const b = await startUpstream()
    const { proxy, server } = await poolProxy(line, { target: [victim.url, a.url, b.url], maxFails: 1, failTimeout: 60_000 })
    const key = keyOf(victim.url)
    victim.signal('SIGKILL')
    await withTimeout(victim.exited, 2_000, 'victim exit')

    // Dead: clients one at a time, each gets in (failing over when dialled to it).
    const held: TestClient[] = []
    const failedDials = () => proxy.stats().upstreams[key]!.failedDials
    for (let i = 0; i < 4; i++) {
      const client = await wsConnect(server.url)
      await echoAll([client])
      held.push(client)
    }
    const early = failedDials()
    expect(early).toBeGreaterThanOrEqual(2)
    expect(proxy.stats().upstreams[key]).toMatchObject({ open: 0, opened: 0, healthy: true })
    // Well inside failTimeout (60 s) and maxFails (1): still dialled, still healthy.
    for (let i = 0; i < 6; i++) {
      const client = await wsConnect(server.url)
      await echoAll([client])
      held.push(client)
    }
    expect(failedDials()).toBeGreaterThan(early)
    expect(proxy.stats().upstreams[key]).toMatchObject({ open: 0, opened: 0, healthy: true })
    expect(a.connections + b.connections).toBe(10)

    // Back on the same port: no window to wait for; with the fewest connections it takes its
    // share of the next 20 at once (least-connections from 0/5/5: 10 of them).
    const restarted = await startChildUpstream(port)
    expect(restarted.url).toBe(key)
    const deadFails = failedDials()
    const after = await openMany(server.url, 20, { concurrency: 20 })
    await echoAll(after)
    const { accepted, connections } = await restarted.counts()
    console.info(`[pool] WHATWG restart (crossws ${line}): ${deadFails} failed dials while dead (10 clients); after the restart it took ${accepted} of the next 20 (open there: ${connections}; others ${a.connections}/${b.connections})`)
    expect(accepted).toBeGreaterThanOrEqual(8)
    expect(proxy.stats().upstreams[key]).toEqual({ open: accepted, opened: accepted, failedDials: deadFails, healthy: true })
    expect(a.connections + b.connections + connections).toBe(30)
  }, 30_000)

  it('SIGSTOP (accepts TCP, never answers), connectTimeout 1000, maxFails 2: connections still succeed; after 2 slow ones it is skipped', async () => {
    const frozen = await startChildUpstream()
    const a = await startUpstream()
    const b = await startUpstream()
    const { proxy, server } = await poolProxy(line, { target: [frozen.url, a.url, b.url], connectTimeout: 1_000, maxFails: 2, failTimeout: 30_000 })
    const key = keyOf(frozen.url)
    frozen.signal('SIGSTOP')

    const durations: number[] = []
    for (let i = 0; i < 24; i++) {
      const started = Date.now()
      const client = await wsConnect(server.url)
      client.send(`hello ${i}`)
      expect((await client.next(5_000)).text).toBe(`hello ${i}`)
      durations.push(Date.now() - started)
    }
    console.info(`[pool] SIGSTOP (crossws ${line}): open+echo times ${durations.join(',')} ms`)
    const slow = durations.map((d, i) => [d, i] as const).filter(([d]) => d >= 900)
    expect(slow).toHaveLength(2)
    for (const [d] of slow) expect(d).toBeLessThan(2_500)
    // Every one after the second slow one is fast: the frozen upstream is skipped.
    const afterSkip = durations.slice(slow[1]![1] + 1)
    expect(afterSkip.length).toBeGreaterThanOrEqual(18)
    expect(Math.max(...afterSkip)).toBeLessThan(500)
    expect(proxy.stats().upstreams[key]).toEqual({ open: 0, opened: 0, failedDials: 2, healthy: false })
    expect(proxy.stats().closed['connect-timeout']).toBe(0)
    expect(a.connections + b.connections).toBe(24)
  }, 30_000)

  // A trial dial must end in `succeeded` or `failed`; any other ending (the client leaves during
  // it, a 4xx answer) must not leave the upstream waiting for a trial that never reports.
  const abandonedTrials = [
    { name: 'its client closes during the trial dial', mode: 'slow' as const },
    { name: 'the trial dial is answered 403 (alive, said no)', mode: 'forbid' as const },
  ]
  // ws only: these take the upstream out with a 503, which a WHATWG constructor cannot see (no
  // trial follows); the connect-timeout trial below runs in both modes.
  it.runIf(usesWsCtor).each(abandonedTrials)('back in service after a trial that ends otherwise: $name', async ({ mode }) => {
    const failTimeout = 300
    let state: 'fail' | 'forbid' | 'ok' = 'fail'
    // Refusals are answered at once, accepts after 300 ms (time for a client to leave).
    const flaky = await startUpstream({
      reject: () => state === 'fail' ? 503 : state === 'forbid' ? 403 : undefined,
      handshakeDelay: 300,
    })
    const good = await startUpstream()
    const { proxy, server } = await poolProxy(line, {
      target: [flaky.url, good.url],
      maxFails: 1,
      failTimeout,
    })
    const key = flaky.url
    // Down: one 503.
    const first = await wsConnect(server.url)
    await echoAll([first])
    expect(proxy.stats().upstreams[key]).toMatchObject({ failedDials: 1, healthy: false })
    await sleep(failTimeout + 100)

    // The trial dial goes to it (fewest connections) and ends neither opened nor failed.
    const handshakesBefore = flaky.handshakes.length
    if (mode === 'slow') {
      state = 'ok'
      const leaver = await wsConnect(server.url)
      await waitFor(() => flaky.handshakes.length === handshakesBefore + 1, { label: 'trial handshake' })
      await leaver.close(1000)
    }
    else {
      state = 'forbid'
      const refused = await wsConnect(server.url)
      expect((await withTimeout(refused.closed, 2_000, 'refused close')).code).toBe(1011)
      expect(flaky.handshakes.length).toBe(handshakesBefore + 1)
    }
    state = 'ok'

    // Well past failTimeout (3x), healthy again: it should get a trial, then connections.
    await sleep(3 * failTimeout)
    const stats = proxy.stats().upstreams[key]!
    const clients = await openMany(server.url, 10, { concurrency: 10 })
    await echoAll(clients)
    const after = proxy.stats().upstreams[key]!
    console.info(`[pool] abandoned trial (${mode}, crossws ${line}): stats before ${JSON.stringify(stats)}; after 10 more clients ${JSON.stringify(after)}; handshakes at the upstream ${flaky.handshakes.length - handshakesBefore - 1} more`)
    // stats() calls it healthy; the pool must dial it again.
    expect(after.healthy).toBe(true)
    expect(flaky.handshakes.length - handshakesBefore - 1, 'handshakes at the upstream after the abandoned trial').toBeGreaterThan(0)
    expect(after.opened, 'dials that opened on it').toBeGreaterThan(0)
  }, 15_000)

  it('back in service after a trial that ends otherwise: taken out by a connect timeout, its trial dial hangs and the client leaves', async () => {
    const failTimeout = 300
    const flaky = await startChildUpstream()
    const good = await startUpstream()
    const { proxy, server } = await poolProxy(line, {
      target: [flaky.url, good.url],
      maxFails: 1,
      failTimeout,
      connectTimeout: 1_000,
    })
    const key = keyOf(flaky.url)
    const state = () => proxy.stats().upstreams[key]!
    flaky.signal('SIGSTOP')
    // Down: one connect timeout (counted against health with either constructor); the client
    // fails over to the good one.
    const first = await wsConnect(server.url)
    await echoAll([first])
    expect(state()).toMatchObject({ failedDials: 1, healthy: false })
    await sleep(failTimeout + 100)

    // The trial dial goes to it (fewest connections) and hangs; its client leaves before the timeout.
    const leaver = await wsConnect(server.url)
    await waitFor(() => state().open === 1, { timeout: 800, label: 'trial dial in flight', describe: () => state() })
    await leaver.close(1000)
    await waitFor(() => state().open === 0, { label: 'trial dial dropped', describe: () => state() })
    // Ended neither opened nor failed.
    expect(state()).toMatchObject({ opened: 0, failedDials: 1 })
    flaky.signal('SIGCONT')

    // Well past failTimeout (3x), answering again: it should get a trial, then connections.
    await sleep(3 * failTimeout)
    const clients = await openMany(server.url, 10, { concurrency: 10 })
    await echoAll(clients)
    const after = state()
    console.info(`[pool] abandoned trial (timeout, crossws ${line}): after 10 more clients ${JSON.stringify(after)}`)
    expect(after.healthy).toBe(true)
    expect(after.opened, 'dials that opened on it').toBeGreaterThan(0)
    expect(after.failedDials).toBe(1)
    expect(proxy.stats().closed['connect-timeout']).toBe(0)
  }, 15_000)
})
