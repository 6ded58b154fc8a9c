/** RFC 15 ILP address: scheme, at least one segment, at most 1023 characters. */
const ADDRESS_RE = /^(g|private|example|peer|self|test[1-3]?|local)([.][a-zA-Z0-9_~-]+)+$/
/** A route prefix may also be a bare scheme ("g", "test"). */
const PREFIX_RE = /^(g|private|example|peer|self|test[1-3]?|local)([.][a-zA-Z0-9_~-]+)*$/
const SEGMENT_RE = /^[a-zA-Z0-9_~-]+$/

export function isValidIlpAddress(address: string): boolean {
  return address.length <= 1023 && ADDRESS_RE.test(address)
}

export function isValidRoutePrefix(prefix: string): boolean {
  return prefix.length <= 1023 && PREFIX_RE.test(prefix)
}

export function isValidAddressSegment(segment: string): boolean {
  return segment.length <= 64 && SEGMENT_RE.test(segment)
}
