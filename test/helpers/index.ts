/**
 * Shared harness for nitro-ws-proxy tests. See test/helpers/README.md.
 *
 * Typical use:
 * ```ts
 * afterEach(cleanup)
 * const upstream = await startUpstream()
 * const server = await startProxy(createWebSocketProxy({ target: upstream.url, ...ctorOption() }), { crossws: '0.4' })
 * const client = await wsConnect(`${server.url}/chat`)
 * client.send('hi'); expect((await client.next()).text).toBe('hi')
 * ```
 */
export * from './cleanup'
export * from './client'
export * from './ctor'
export * from './proxy'
export * from './upstream'
export * from './wait'
