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

/**
 * The segment under a child's address where the farm receives STREAM
 * payments for it: `<ilpAddress>.<id>.~stream.<connection token>`. `~` keeps
 * it clear of any address a user's own receiver would hand out for itself.
 */
export const HOSTED_RECEIVER_SEGMENT = '~stream'

/** The farm-hosted receiver's address of the child account `accountId`. */
export function hostedReceiverAddress(ilpAddress: string, accountId: string): string {
  return `${ilpAddress}.${accountId}.${HOSTED_RECEIVER_SEGMENT}`
}

/** Whether `destination` is a connection of the farm-hosted receiver of `accountId`. */
export function isHostedReceiverDestination(destination: string, ilpAddress: string, accountId: string): boolean {
  const base = hostedReceiverAddress(ilpAddress, accountId)
  return destination.length > base.length + 1 && destination.startsWith(base) && destination.charCodeAt(base.length) === 46 // '.'
}
