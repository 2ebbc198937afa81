/**
 * The metrics endpoint (module option `metrics`): a plain h3 event handler the module registers
 * on `metrics.path` (default `/_ws-proxy/metrics`). Who may read it: see `canReadMetrics`;
 * everyone else gets the same 404 as a path that does not exist, so the endpoint is not revealed.
 */
import type { H3Event } from 'h3'
import { createError, defineEventHandler, getRequestHeader, setResponseHeaders } from '#nitro-ws-proxy/h3'
import { canReadMetrics, METRICS_CONTENT_TYPE, type MetricsRequest, renderMetrics } from './metrics'

/** Input of {@link defineWsProxyMetricsHandler}, written by the module's generated code. */
export interface MetricsHandlerInput {
  /**
   * The bearer token (`runtimeConfig.wsProxy.metrics.token`, env `NITRO_WS_PROXY_METRICS_TOKEN`,
   * Nuxt `NUXT_WS_PROXY_METRICS_TOKEN`); empty or unset: loopback clients only.
   */
  token: () => unknown
}

/** Create the metrics endpoint's handler. */
export function defineWsProxyMetricsHandler(input: MetricsHandlerInput) {
  return defineEventHandler((event) => {
    const token = input.token()
    if (!canReadMetrics(metricsRequestOf(event), typeof token === 'string' || typeof token === 'number' ? String(token) : undefined)) {
      throw notFound(event)
    }
    setResponseHeaders(event, { 'content-type': METRICS_CONTENT_TYPE, 'cache-control': 'no-store' })
    const body = renderMetrics()
    return event.method === 'HEAD' ? '' : body
  })
}

/** The parts of an h3 event the access rules read: the socket's address, never a header's. */
export function metricsRequestOf(event: H3Event): MetricsRequest {
  const headers = event.node?.req?.headers ?? {}
  return {
    method: event.method,
    remoteAddress: event.node?.req?.socket?.remoteAddress,
    authorization: getRequestHeader(event, 'authorization'),
    forwarded: headers.forwarded !== undefined || headers['x-forwarded-for'] !== undefined || headers['x-real-ip'] !== undefined,
  }
}

/**
 * The error Nitro's router throws for a path nothing serves (h3's preemptive router: same
 * status, name and message, so the same body), so the endpoint looks absent.
 */
function notFound(event: H3Event) {
  const path = (event.path || '/').split('?')[0] || '/'
  return createError({ statusCode: 404, name: 'Not Found', statusMessage: `Cannot find any route matching ${path}.` })
}
