/**
 * Buffered size of a text frame as the contract counts it: 3 bytes per UTF-16 code unit
 * (the UTF-8 worst case). For UTF-8 bytes, the UTF-16 length is computed without decoding:
 * every non-continuation byte starts one unit, a 4-byte sequence is a surrogate pair (two).
 */
export function textBufferCost(data: string | Uint8Array): number {
  if (typeof data === 'string') return data.length * 3
  let units = 0
  for (let i = 0; i < data.length; i++) {
    const byte = data[i]!
    if ((byte & 0xC0) !== 0x80) units += byte >= 0xF0 ? 2 : 1
  }
  return units * 3
}
