/**
 * @ilp-farm/protocol: the ILP wire forms ilp-farm and its client share, so
 * that each is written once. `oer` reads and writes packets straight from
 * their bytes (the farm's packet path); `json` is the packet form of the
 * JSON-RPC API, read and written by both sides.
 */
export {
  contentAt,
  contentOffset,
  fulfillmentOf,
  interledgerTime,
  interledgerTimeToDate,
  lengthPrefixAt,
  lengthPrefixSize,
  outgoingPrepare,
  readLengthPrefix,
  readPrepare,
} from './oer.js'
export {
  decodeBase64,
  decodeCondition,
  type FulfillJson,
  ISO_DATE,
  isUInt64String,
  localReject,
  MAX_DATA_BYTES,
  PacketJsonError,
  type PrepareJson,
  prepareFromJson,
  prepareToJson,
  type RejectJson,
  rejectToJson,
  type ReplyJson,
  replyFromJson,
  replyToJson,
} from './json.js'
export { leadingZeroBits, type NewAccount, powDigest, searchPow, verifyPow } from './onboarding.js'
export { TUNNEL_SECRET_HEADER } from './tunnel.js'
export { SpspJsonError, spspFromJson, type StreamDestination } from './spsp.js'
