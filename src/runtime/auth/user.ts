import type { RequiredUserValue } from './types'

/** Read a dotted path of own properties (never the prototype chain). */
function readPath(value: unknown, path: string): unknown {
  let current = value
  for (const key of path.split('.')) {
    if (!current || typeof current !== 'object' || !Object.hasOwn(current, key)) {
      return undefined
    }
    current = (current as Record<string, unknown>)[key]
  }
  return current
}

/**
 * `true` when the user satisfies every requirement: the value at each path equals one of the
 * required values, or (for an array value) contains one of them.
 */
export function matchesRequirements(user: unknown, requirements: Record<string, RequiredUserValue[]>): boolean {
  for (const [path, allowed] of Object.entries(requirements)) {
    const actual = readPath(user, path)
    const candidates = Array.isArray(actual) ? actual : [actual]
    if (!candidates.some(candidate => allowed.includes(candidate as RequiredUserValue))) {
      return false
    }
  }
  return true
}

/**
 * `JSON.stringify(user)` with every non-ASCII character escaped as `\uXXXX`, so the value is a
 * valid header value (Node refuses characters beyond Latin-1 and mangles the rest) and still
 * parses back to the same object with `JSON.parse`.
 */
export function encodeUserHeader(user: unknown): string {
  return JSON.stringify(user).replace(
    /[\u007F-\uFFFF]/g,
    char => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
}
