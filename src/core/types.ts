import type { Hooks, Peer } from 'crossws'

/**
 * What a target resolver, `headers` and other per-connection callbacks receive.
 *
 * In the default mode it is the crossws `Peer`. With `upstreamFirst: true` the upstream is
 * dialled during `upgrade`, before a peer exists, so callbacks receive a peer-like object with
 * the same `request`, `context` and `remoteAddress`.
 */
export interface ProxyPeer {
  /** The upgrade request (absolute `url`, `headers`). */
  readonly request: Peer['request']
  /** Per-connection context, shared between `upgrade` and the peer (`request.context`). */
  readonly context: Record<string, unknown>
  /** Address of the client socket, when the adapter knows it. */
  readonly remoteAddress?: string
}

/** One upstream URL, or several (a pool: see `balance`). */
export type WebSocketProxyTargetList = string | URL | Array<string | URL>

/** Upstream URL(s), or a function resolving them per connection (may be async). */
export type WebSocketProxyTarget =
  | WebSocketProxyTargetList
  | ((peer: ProxyPeer) => WebSocketProxyTargetList | Promise<WebSocketProxyTargetList>)

/**
 * How a connection picks its upstream from a pool:
 * - `least-connections`: the one with the fewest connections (dialling or open); ties in turn.
 * - `round-robin`: in turn.
 * - `random`.
 * - `hash`: by `hashKey`, with rendezvous hashing: the same key lands on the same upstream
 *   (across reconnects, and on every instance with the same upstreams), and removing one
 *   upstream moves only the keys it held. A connection without a key: least connections.
 */
export type WebSocketProxyBalance = 'least-connections' | 'round-robin' | 'random' | 'hash'

/**
 * The key of `balance: 'hash'`: `'user'` (the `user` in the connection's context: its `id`,
 * `sub` or `email`, else the whole user), `'ip'` (client address), `'header:<name>'`,
 * `'query:<name>'`, `'cookie:<name>'`, or a function of the peer.
 */
export type WebSocketProxyHashKey =
  | 'user'
  | 'ip'
  | `header:${string}`
  | `query:${string}`
  | `cookie:${string}`
  | ((peer: ProxyPeer) => string | number | undefined | null)

/** Active health checks of a pool's upstreams. */
export interface WebSocketProxyHealthCheck {
  /** Milliseconds between checks of each upstream. */
  interval: number
  /**
   * HTTP path requested with GET on the upstream's host (`http://` for `ws://`, `https://` for
   * `wss://`); a 2xx or 3xx answer passes. Without it, a WebSocket handshake on the target
   * passes when it opens.
   */
  path?: string
  /** Milliseconds a check may take. @default the smaller of `interval` and 5000 */
  timeout?: number
}

/**
 * Limits against abuse (all off by default). Connection caps are per proxy (one route) and per
 * server instance: an upgrade over a cap is refused with 429 and `Retry-After: 5` before anything
 * is dialled. Rates are per client connection, token buckets holding one second's worth: a client
 * that sends faster is closed with 1008 (`Message rate limit exceeded` / `Byte rate limit
 * exceeded`); the upstream gets 1001.
 */
export interface WebSocketProxyLimits {
  /** Connections of this proxy at once (including upgrades still completing). */
  connections?: number
  /**
   * Connections per client address at once: the socket's address, or the `clientAddress` a
   * wrapper put in the upgrade's `request.context` (the Nitro runtime does, with `trustProxy`).
   */
  perIp?: number
  /** Connections per user at once (`request.context.user`: its `id`, `sub` or `email`). */
  perUser?: number
  /** Messages per second from one client (burst: one second's worth). */
  messagesPerSecond?: number
  /** Payload bytes per second from one client (burst: one second's worth). */
  bytesPerSecond?: number
}

/** Counters of one upstream of a pool, in `stats().upstreams`. */
export interface WebSocketProxyUpstreamStats {
  /** Connections assigned to it now (dialling or open). */
  open: number
  /** Dials that opened. */
  opened: number
  /** Dials that failed before it opened (refused, 5xx, timeout). */
  failedDials: number
  /** Whether it takes new connections (passive and active health). */
  healthy: boolean
}

/** Anything the `Headers` constructor accepts: object, `Headers`, or `[name, value]` pairs. */
export type ProxyHeadersInit = Headers | Record<string, string> | Array<[string, string]>

/** Minimal shape of a WebSocket constructor the proxy can dial with (WHATWG or `ws`). */
export type WebSocketConstructor = new (
  url: string | URL,
  protocols?: string | string[],
  options?: any,
) => any

/** Details passed to `onUpstreamConnect` and `onUpstreamOpen`. */
export interface WebSocketProxyUpstream {
  /** Resolved upstream URL. */
  url: URL
}

/**
 * Why a proxied connection ended, as counted in `stats().closed`:
 * - `client`: the client closed or errored.
 * - `upstream`: the upstream closed.
 * - `upstream-error`: the upstream failed (refused, non-101 answer, reset) or sent an invalid frame.
 * - `connect-timeout`: the upstream did not open within `connectTimeout`.
 * - `setup-failed`: the resolver, `headers`, a callback or the constructor threw.
 * - `buffer-limit`: pre-open buffering passed `maxBufferSize` (1009).
 * - `backpressure-limit`: a side that cannot be paused passed `maxBufferedAmount`.
 * - `client-idle`: no client frame within `clientIdleTimeout` (1001).
 * - `client-heartbeat` / `upstream-heartbeat`: a leg did not answer pings in time.
 * - `shutdown`: `closeAll()` or `drainAll()` was called.
 * - `lifetime`: the connection reached `maxLifetime`.
 * - `revoked`: closed by `closeMatching()` (e.g. the user logged out).
 * - `rate-limit`: the client sent faster than `limits.messagesPerSecond` / `bytesPerSecond`.
 */
export type WebSocketProxyCloseCause =
  | 'client'
  | 'upstream'
  | 'upstream-error'
  | 'connect-timeout'
  | 'setup-failed'
  | 'buffer-limit'
  | 'backpressure-limit'
  | 'client-idle'
  | 'client-heartbeat'
  | 'upstream-heartbeat'
  | 'shutdown'
  | 'lifetime'
  | 'revoked'
  | 'rate-limit'

/** A close frame as one leg saw it (1006: no close frame, 1005: one without a code). */
export interface WebSocketProxyLegClose {
  code: number
  reason: string
}

/** One proxied connection, as `connections()` and `onConnectionOpen` see it. */
export interface WebSocketProxyConnectionInfo {
  /** Unique in this process (`<random prefix>-<sequence>`), stable for the connection's life. */
  id: string
  peer: ProxyPeer
  /** The client's address, when the adapter knows it. */
  remoteAddress: string | undefined
  /** The upstream URL dialled (the last attempt's); `undefined` before the first dial. */
  url: URL | undefined
  /** Epoch ms: the client accepted; the upstream opened. */
  startedAt: number
  upstreamOpenedAt: number | undefined
  /** Milliseconds of the upstream handshake (dial to open, of the attempt that opened). */
  handshakeMs: number | undefined
  durationMs: number
  /** Payload bytes and messages relayed so far, each way. */
  bytes: { toUpstream: number, toClient: number }
  messages: { toUpstream: number, toClient: number }
}

/** One ended connection: `onConnectionClose` gets exactly one per connection, however it ended. */
export interface WebSocketProxyConnectionRecord extends WebSocketProxyConnectionInfo {
  endedAt: number
  /** Who ended it, and the cause counted in `stats().closed`. */
  source: 'client' | 'upstream' | 'proxy'
  cause: WebSocketProxyCloseCause
  /** What the client received or sent, and the same for the upstream leg. */
  client: WebSocketProxyLegClose
  upstream: WebSocketProxyLegClose
  error?: unknown
}

/** Details passed to `onUpstreamClose`. */
export interface WebSocketProxyCloseDetails extends WebSocketProxyUpstream {
  /** Which side ended the connection: the client, the upstream, or the proxy itself. */
  source: 'client' | 'upstream' | 'proxy'
  /** Finer-grained cause, as counted in `stats()`. */
  cause: WebSocketProxyCloseCause
  /** Close code received (client/upstream) or sent by the proxy. Unset after an error. */
  code?: number
  /** Close reason accompanying `code`. */
  reason?: string
  /** The error that ended the connection, if any. */
  error?: unknown
}

/** Options of {@link createWebSocketProxy}. */
export interface WebSocketProxyOptions {
  /**
   * Upstream URL (`ws://`, `wss://`, or `ws+unix:` with the `ws` constructor), a list of them
   * (a pool, up to 32: see `balance`), or a resolver called per connection returning either (may
   * be async; `connectTimeout` covers it).
   *
   * **SSRF risk**: a resolver is a trust boundary. Never build the URL from client-controlled
   * input (path, query, headers) without checking it against hosts you control.
   */
  target: WebSocketProxyTarget
  /**
   * How a connection picks its upstream when `target` gives several.
   * @default 'least-connections'
   */
  balance?: WebSocketProxyBalance
  /** With `balance: 'hash'`: what a connection is hashed by. */
  hashKey?: WebSocketProxyHashKey
  /**
   * Passive health, as nginx's `max_fails`: after this many failed dials (refused, non-101 5xx,
   * connect timeout) within `failTimeout`, an upstream gets no dials for `failTimeout`, then one
   * trial dial. `0` turns it off. Ignored for a single upstream.
   * @default 1
   */
  maxFails?: number
  /**
   * Milliseconds of the passive health window and of the time out of service.
   * @default 10000
   */
  failTimeout?: number
  /** Active health checks of the upstreams (off by default). */
  healthCheck?: WebSocketProxyHealthCheck
  /**
   * The pool's upstreams when `target` is a function: registered (and health-checked) from the
   * start instead of from their first connection.
   */
  upstreams?: Array<string | URL>
  /**
   * Milliseconds after which a connection is closed (both legs get `lifetimeClose`), with ±10 %
   * jitter so that clients reconnect spread out, onto upstreams added since. `0`: no limit.
   * @default 0
   */
  maxLifetime?: number
  /** Caps on connections and client send rates (off by default). */
  limits?: WebSocketProxyLimits
  /**
   * Close code (and reason) sent at `maxLifetime`.
   * @default [1001, 'Connection lifetime reached']
   */
  lifetimeClose?: [code: number, reason?: string]
  /**
   * Forward the client's `sec-websocket-protocol` offer upstream and answer the client with one
   * protocol (the first valid offer, or the upstream's choice with `upstreamFirst`). Tokens that
   * are not RFC 7230 tokens are dropped.
   * @default true
   */
  forwardProtocol?: boolean
  /**
   * Rewrite the client's (valid) subprotocol offer before it is forwarded upstream and answered,
   * e.g. to drop an entry that carries a token. Called in `upgrade`.
   * @example offer => offer.filter(p => !p.startsWith('base64url.bearer.'))
   */
  protocolOffer?: (offer: string[], request: Request) => string[]
  /**
   * Extra headers for the upstream handshake (object, `Headers`, pairs, or a per-connection
   * function). Honoured by constructors taking a third options argument (`ws`, undici); the
   * WHATWG global `WebSocket` ignores them.
   */
  headers?: ProxyHeadersInit | ((peer: ProxyPeer) => ProxyHeadersInit | undefined | void)
  /**
   * Bytes buffered per client while the upstream is connecting; text counts 3 bytes per UTF-16
   * unit (UTF-8 worst case). Past it the client is closed with 1009. `0` disables the limit.
   * @default 1048576
   */
  maxBufferSize?: number
  /**
   * Milliseconds for resolving the target and completing the upstream handshake; past it the
   * client is closed with 1011 (or answered 504 with `upstreamFirst`). `0` disables it.
   * @default 10000
   */
  connectTimeout?: number
  /**
   * Milliseconds without any frame from the client after which both sides are closed (1001).
   * Only for protocols where clients send periodically. `0` disables it.
   * @default 0
   */
  clientIdleTimeout?: number
  /**
   * Constructor used to dial the upstream. Defaults to `globalThis.WebSocket`; on Node 20 pass
   * `WebSocket` from the `ws` package (which also honours `headers` and `ws+unix:`).
   */
  WebSocket?: WebSocketConstructor
  /**
   * Extra options for the constructor's third argument (`ws`: `perMessageDeflate`, `agent`,
   * `createConnection`, ...). A `headers` key here is overridden by the `headers` option.
   */
  webSocketOptions?: Record<string, unknown> | ((peer: ProxyPeer) => Record<string, unknown> | undefined | void)
  /**
   * Dial the upstream during `upgrade` and accept the client only once it has opened: the
   * client sees the upstream's refusal as an HTTP status (401/403/404 passed through, 502 when
   * unreachable, 504 on timeout) and gets the subprotocol the upstream chose. Costs the
   * upstream's handshake time on every client handshake.
   * @default false
   */
  upstreamFirst?: boolean
  /**
   * Relay data frames byte for byte once both legs are open: on Node, when the client and the
   * upstream are both `ws` sockets and neither leg negotiated an extension (compression). No
   * per-message decoding, unmasking, re-masking or copying; close, ping and pong frames are still
   * handled by each leg. The client's frames keep the mask its browser chose. Crossws `message`
   * hooks no longer see relayed messages then: set `false` if a wrapper must see each message.
   * Frames over 128 KiB are streamed as they arrive (memory stays bounded by the water marks);
   * every frame header is checked as an endpoint must (masking, RSV bits, opcodes). Text
   * payloads are not checked for UTF-8 here: the receiving endpoint does that.
   * @default true
   */
  passthrough?: boolean
  /**
   * Bytes queued toward one side above which the proxy stops reading from the other side.
   * @default 1048576
   */
  highWaterMark?: number
  /**
   * Bytes queued toward a paused side's peer below which reading resumes.
   * @default 262144
   */
  lowWaterMark?: number
  /**
   * Hard cap of bytes queued toward one side whose sender cannot be paused: a WHATWG upstream
   * (no `pause()`) sending to a slow client, or a client on a non-Node adapter sending to a slow
   * upstream. When the queue is past it before a new message is added, the connection is
   * closed with 1008 (`Client too slow` / `Upstream too slow`): one message larger than the cap
   * still passes, a consumer that does not keep up does not. A `ws` leg is paused instead, so a large message between two `ws` legs is never cut
   * by this cap. `0` disables it.
   * @default 16777216
   */
  maxBufferedAmount?: number
  /**
   * Milliseconds between WebSocket pings on each leg (raw `ws` sockets only). `0` disables.
   * @default 30000
   */
  heartbeatInterval?: number
  /**
   * Milliseconds a leg has to show life after a ping before it is considered dead: any byte
   * received counts (a client busy uploading one large frame cannot send a pong mid-frame), and
   * so does output draining into a leg whose ping waits behind it.
   * @default 10000
   */
  heartbeatTimeout?: number
  /** Called once the target is resolved, right before dialling. Throwing closes with 1011. */
  onUpstreamConnect?: (peer: ProxyPeer, upstream: WebSocketProxyUpstream) => void
  /** Called when the upstream handshake completed and buffered frames were flushed. */
  onUpstreamOpen?: (peer: ProxyPeer, upstream: WebSocketProxyUpstream) => void
  /**
   * Called once per connection that was dialled, when it ends, with which side ended it and the
   * URL of the last dial (with failover, `onUpstreamConnect` runs once per attempt).
   */
  onUpstreamClose?: (peer: ProxyPeer, details: WebSocketProxyCloseDetails) => void
  /** Called when a connection's upstream opened (the relay starts). Not for connections that never reach it. */
  onConnectionOpen?: (info: WebSocketProxyConnectionInfo) => void
  /**
   * Called exactly once per connection (client accepted), however it ends: durations, bytes and
   * messages each way, the close each leg saw, who ended it and why. An access log's source.
   */
  onConnectionClose?: (record: WebSocketProxyConnectionRecord) => void
}

/** Counters of one proxy instance, read with `proxy.stats()`. */
export interface WebSocketProxyStats {
  /** Connections open right now (from client open until both sides are released). */
  open: number
  /** Connections accepted since creation. */
  opened: number
  /** Connections ended since creation, by cause. */
  closed: Record<WebSocketProxyCloseCause, number>
  /** Messages relayed client → upstream and upstream → client. */
  messages: { toUpstream: number, toClient: number }
  /** Payload bytes relayed each way (text from a WHATWG upstream counts UTF-16 units). */
  bytes: { toUpstream: number, toClient: number }
  /** Per upstream (keyed by origin, e.g. `ws://10.0.0.1:4000`): only upstreams dialled or registered. */
  upstreams: Record<string, WebSocketProxyUpstreamStats>
  /** Upgrades this proxy refused, by HTTP status (400 malformed, 429 limits, 503 draining; upstream-first: 4xx passed through, 502, 504). */
  refused: Record<number, number>
  /** Refusals and closes by limit: the 429s by cap, the 1008s by rate. */
  limited: { connections: number, perIp: number, perUser: number, messageRate: number, byteRate: number }
  /** With connection caps: slots held now (connections and upgrades completing), distinct addresses and users. */
  limits?: { connections: number, addresses: number, users: number }
}

/** The hooks returned by {@link createWebSocketProxy}, plus control of its connections. */
export interface WebSocketProxy extends Required<Pick<Hooks, 'upgrade' | 'open' | 'message' | 'close' | 'error'>> {
  /** A snapshot of this proxy's counters. */
  stats: () => WebSocketProxyStats
  /**
   * Close every connection of this proxy: clients get `code` (1001 Going Away), upstreams are
   * closed too. Resolves once all sockets are closed, or after `timeout` ms (then terminated).
   */
  closeAll: (code?: number, reason?: string, timeout?: number) => Promise<void>
  /**
   * Drain for a deploy (not `drain`: crossws 0.4 calls a hook by that name): from now on upgrades are refused with 503 and `Retry-After: 1`; open
   * connections are closed one after another, spread evenly over `spread` ms (both legs get
   * `code`/`reason`), and sockets that have not finished their closing handshake 1 s after the
   * spread are terminated. Resolves when all are closed.
   */
  drainAll: (options?: WebSocketProxyDrainOptions) => Promise<void>
  /**
   * Close the connections `match` selects (`close` is the crossws hook) (both legs get `code`/`reason`), e.g. every socket of
   * a user who logged out. Returns how many were closed.
   */
  closeMatching: (match: (peer: ProxyPeer) => boolean, code?: number, reason?: string) => number
  /** The open connections now (a snapshot each: id, peer, upstream, age, bytes, messages). */
  connections: () => WebSocketProxyConnectionInfo[]
}

/** Options of {@link WebSocketProxy.drainAll}. */
export interface WebSocketProxyDrainOptions {
  /** Milliseconds over which open connections are closed. @default 10000 */
  spread?: number
  /** @default 1001 */
  code?: number
  /** @default 'Server shutting down' */
  reason?: string
}
