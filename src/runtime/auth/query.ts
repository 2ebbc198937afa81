/**
 * Query parameters that carry tokens (`jwt.from: ['query:<name>']`) are cut from the client's
 * query before the upstream URL is built. Pure string work: the other parameters keep their
 * bytes (no re-encoding), so the upstream sees them exactly as the client sent them.
 */

/** Decode a query parameter name as `URLSearchParams` does (`+` is a space, bad escapes kept). */
function decodeName(raw: string): string {
  const spaced = raw.replace(/\+/g, ' ')
  try {
    return decodeURIComponent(spaced)
  }
  catch {
    return spaced
  }
}

/**
 * `query` (raw, without `?`) without every parameter whose decoded name is in `names`.
 *
 * @example withoutQueryParams('room=1&access_token=eyJ…&x=%20', ['access_token']) // 'room=1&x=%20'
 */
export function withoutQueryParams(query: string, names: readonly string[]): string {
  if (!query || !names.length) return query
  return query
    .split('&')
    .filter((part) => {
      const eq = part.indexOf('=')
      return !names.includes(decodeName(eq === -1 ? part : part.slice(0, eq)))
    })
    .join('&')
}
