import { PacketJsonError, prepareFromJson, replyToJson } from '@ilp-farm/protocol'
import { type IlpPrepare, serializeIlpPrepare } from 'ilp-packet'
import { rotateToken } from '../accounts/service.js'
import { allowedCallbackPrefixes, callbackUrlAllowed } from '../async/callback-policy.js'
import { handlePrepare } from '../packet/pipeline.js'
import { quote, QUOTE_SCHEMA, QuoteError, type QuoteRequest } from '../rates/quote.js'
import { receivingAddress } from '../receiver/payment-pointer.js'
import { onboardingMethods } from './onboarding-methods.js'
import { paymentMethods } from './payment-methods.js'
import { openRpcDocument } from './openrpc.js'
import { ILP_ERROR, INTERNAL_ERROR, invalidParams, RpcError } from './protocol.js'
import type { AnyRpcMethod, JsonSchema, PublicRpcMethod, RpcMethod } from './types.js'
import { MAX_RPC_URL_LENGTH, parseRpcUrl } from './user-rpc.js'

const decimal: JsonSchema = { type: 'string', pattern: '^-?[0-9]+$' }
// Params are checked against these schemas as rpc.discover publishes them (params.ts); the formats are the
// farm's own (util/json-schema.ts): uint64 bounds the value, ilp-address is RFC 15's form.
const uint64: JsonSchema = { type: 'string', pattern: '^(0|[1-9][0-9]*)$', format: 'uint64', description: 'a UInt64 as a decimal string' }
const base64: JsonSchema = { type: 'string', contentEncoding: 'base64' }
const ilpAddress: JsonSchema = { type: 'string', format: 'ilp-address', description: 'an ILP address (RFC 15)' }
const ILP_ERRORS = [{ code: ILP_ERROR, message: 'ILP error: data.ilpCode is the code a packet would get' }]

const getBalance: RpcMethod = {
  name: 'ilp_getBalance',
  summary: "The calling account's balance and limits, in its base units.",
  params: [],
  result: {
    name: 'balance',
    schema: {
      type: 'object',
      required: ['balance', 'minBalance', 'maxBalance', 'maxPacketAmount'],
      properties: {
        balance: { ...decimal, description: 'settled balance plus what prepares in flight hold (what the limits are checked against)' },
        minBalance: decimal,
        maxBalance: { oneOf: [decimal, { type: 'null' }], description: 'null: no upper limit' },
        maxPacketAmount: { oneOf: [uint64, { type: 'null' }], description: 'null: only UInt64' },
      },
    },
  },
  async invoke({ account, services }) {
    const b = await services.ledger.balance(account.id)
    return {
      balance: b.balance,
      minBalance: account.minBalance,
      maxBalance: account.maxBalance ?? null,
      maxPacketAmount: account.maxPacketAmount ?? null,
    }
  },
}

const getAccountInfo: RpcMethod = {
  name: 'ilp_getAccountInfo',
  summary:
    "The calling account's ILP address, asset code and scale (what ILDCP gives a child), the URL prefixes its RPC URL may have, and a child's payment pointer, where the farm receives for it while its user is offline.",
  params: [],
  result: {
    name: 'accountInfo',
    schema: {
      type: 'object',
      required: ['accountId', 'relation', 'ilpAddress', 'connectorAddress', 'assetCode', 'assetScale', 'allowedUrlPrefixes'],
      properties: {
        accountId: { type: 'string' },
        relation: { enum: ['parent', 'peer', 'child'] },
        ilpAddress: { oneOf: [ilpAddress, { type: 'null' }], description: '<farm address>.<account id> for a child; null for a parent or peer (they have their own)' },
        connectorAddress: { ...ilpAddress, description: "the farm's own address" },
        assetCode: { type: 'string' },
        assetScale: { type: 'integer' },
        allowedUrlPrefixes: {
          type: 'array',
          items: { type: 'string' },
          description: 'ilp_setRpcUrl takes only a URL starting with one of these (set by the operator); empty: none',
        },
        paymentPointer: { type: ['string', 'null'], description: '$host/…/accounts/<id>/spsp for a child (the farm receives for it); else null' },
        spspUrl: { type: ['string', 'null'], description: 'the SPSP URL of that pointer, as this request reached the farm' },
      },
    },
  },
  async invoke({ account, services, baseUrl }) {
    const receiving =
      account.relation === 'child' && services.transports.hosted !== undefined && baseUrl !== undefined ? receivingAddress(baseUrl, account.id) : { paymentPointer: null, spspUrl: null }
    return {
      accountId: account.id,
      relation: account.relation,
      ilpAddress: account.relation === 'child' ? `${services.ilpAddress}.${account.id}` : null,
      connectorAddress: services.ilpAddress,
      assetCode: account.assetCode,
      assetScale: account.assetScale,
      allowedUrlPrefixes: allowedCallbackPrefixes(account),
      ...receiving,
    }
  },
}

const quoteMethod: RpcMethod = {
  name: 'ilp_quote',
  summary: 'A quote from the address mapper for one packet from the calling account: the other amount and the next hop.',
  params: [
    { name: 'destination', required: true, description: 'where the packet goes', schema: ilpAddress },
    { name: 'sourceAmount', required: false, description: "in the caller's base units; give exactly one of sourceAmount and destinationAmount", schema: uint64 },
    { name: 'destinationAmount', required: false, description: "in the next hop's base units", schema: uint64 },
  ],
  result: { name: 'quote', schema: QUOTE_SCHEMA },
  errors: ILP_ERRORS,
  async invoke({ account, services }, params: { destination?: string; sourceAmount?: string; destinationAmount?: string }) {
    const { destination, sourceAmount, destinationAmount } = params
    // OpenRPC describes params one by one: a rule over two of them is the method's to check
    if ((sourceAmount === undefined) === (destinationAmount === undefined)) throw invalidParams('give exactly one of sourceAmount and destinationAmount')
    const req: QuoteRequest =
      sourceAmount === undefined ? { from: account, destination: destination!, destinationAmount: destinationAmount! } : { from: account, destination: destination!, sourceAmount }
    try {
      return await quote(req, services)
    } catch (err) {
      if (err instanceof QuoteError) throw new RpcError(ILP_ERROR, err.message, err.code)
      throw err
    }
  },
}

const sendPrepare: RpcMethod = {
  name: 'ilp_sendPrepare',
  summary: 'Sends a Prepare from the calling account through the packet path (as ILP-over-HTTP does) and returns the Fulfill or Reject.',
  params: [
    { name: 'amount', required: true, description: "in the caller's base units", schema: uint64 },
    { name: 'destination', required: true, description: 'where the packet goes', schema: ilpAddress },
    {
      name: 'executionCondition',
      required: true,
      description: '32 bytes: 64 hex digits or base64',
      schema: { type: 'string', pattern: '^([0-9a-fA-F]{64}|[A-Za-z0-9+/_-]{43}=?)$', description: '32 bytes as 64 hex digits or base64' },
    },
    {
      name: 'expiresAt',
      required: true,
      description: 'ISO 8601 timestamp with a time zone',
      schema: { type: 'string', format: 'date-time', description: 'an ISO 8601 timestamp with a time zone, such as 2030-01-01T00:00:00.000Z' },
    },
    {
      name: 'data',
      required: false,
      description: 'at most 32767 bytes; default empty',
      // the length bounds the base64 text; the decoded bytes are counted where the Prepare is made
      schema: { ...base64, format: 'base64', maxLength: 43_692, description: 'base64 of at most 32767 bytes' },
    },
  ],
  result: {
    name: 'reply',
    schema: {
      oneOf: [
        { type: 'object', required: ['type', 'fulfillment', 'data'], properties: { type: { const: 'fulfill' }, fulfillment: base64, data: base64 } },
        {
          type: 'object',
          required: ['type', 'code', 'triggeredBy', 'message', 'data'],
          properties: { type: { const: 'reject' }, code: { type: 'string' }, triggeredBy: { type: 'string' }, message: { type: 'string' }, data: base64 },
        },
      ],
    },
  },
  async invoke({ account, services }, params) {
    const reply = await handlePrepare(account, serializeIlpPrepare(prepareFrom(params)), undefined, services)
    try {
      return replyToJson(reply)
    } catch {
      throw new RpcError(INTERNAL_ERROR, 'the packet path answered with neither a Fulfill nor a Reject')
    }
  },
}

/** The params as a Prepare (its JSON form); -32602 naming the field that is not right. */
function prepareFrom(params: Record<string, unknown>): IlpPrepare {
  try {
    return prepareFromJson(params)
  } catch (err) {
    if (err instanceof PacketJsonError) throw invalidParams(err.message)
    throw err
  }
}

const rpcUrlResult = {
  name: 'rpcUrl',
  schema: {
    type: 'object',
    required: ['url'],
    properties: { url: { oneOf: [{ type: 'string', format: 'uri' }, { type: 'null' }], description: 'null: none set, prepares go to the outgoing URL' } },
  },
}

const setRpcUrl: RpcMethod = {
  name: 'ilp_setRpcUrl',
  summary:
    "Registers (or with null, clears) the calling account's own JSON-RPC URL: prepares for the account then arrive there as ilp_receivePrepare calls instead of at its outgoing URL.",
  params: [
    {
      name: 'url',
      required: true,
      description: `an http(s) URL without credentials, at most ${MAX_RPC_URL_LENGTH} characters; null clears it`,
      schema: {
        oneOf: [{ type: 'string', format: 'uri', maxLength: MAX_RPC_URL_LENGTH }, { type: 'null' }],
        description: `an http(s) URL without credentials, at most ${MAX_RPC_URL_LENGTH} characters, or null`,
      },
    },
  ],
  result: rpcUrlResult,
  async invoke({ account, services }, params) {
    const url = params.url as string | null
    // the schema takes any URL: the scheme and the credentials are the farm's policy, checked as it parses
    if (url !== null && parseRpcUrl(url) === undefined) {
      throw invalidParams(`url: must be an http(s) URL without credentials, at most ${MAX_RPC_URL_LENGTH} characters, or null`)
    }
    // The farm only calls addresses the operator allows for the account: no request forgery towards internal services.
    if (url !== null && !callbackUrlAllowed(account, parseRpcUrl(url)!.href)) {
      const allowed = allowedCallbackPrefixes(account)
      throw invalidParams(
        allowed.length === 0
          ? 'url is not allowed for this account: the operator allows it no RPC URL yet (incoming.callbackUrls; for sign-up and ticket accounts users.rpcUrlPrefixes)'
          : `url is not allowed for this account: it must start with one of ${JSON.stringify(allowed)} (incoming.callbackUrls)`,
      )
    }
    if (services.userRpc === undefined) throw new RpcError(INTERNAL_ERROR, 'RPC URLs are not available on this worker')
    // Stored and answered normalized (URL.href): the URL called is the one checked above.
    const href = url === null ? null : parseRpcUrl(url)!.href
    await services.userRpc.set(account.id, href)
    return { url: href }
  },
}

const getRpcUrl: RpcMethod = {
  name: 'ilp_getRpcUrl',
  summary: "The calling account's own JSON-RPC URL, or null.",
  params: [],
  result: rpcUrlResult,
  async invoke({ account, services }) {
    if (services.userRpc === undefined) throw new RpcError(INTERNAL_ERROR, 'RPC URLs are not available on this worker')
    return { url: await services.userRpc.get(account.id) }
  },
}

const rotateTokenMethod: RpcMethod = {
  name: 'ilp_rotateToken',
  summary:
    "Replaces the calling account's token (JSON-RPC and ILP-over-HTTP alike) with a new one, answered once: the token used for this call stops working on every worker within a second.",
  params: [],
  result: { name: 'newToken', schema: { type: 'object', properties: { token: { type: 'string', description: '256 random bits, base64url; shown once' } } } },
  async invoke({ account, services }) {
    const rotated = await rotateToken(services.registry, account.id)
    if (!rotated.ok) throw new RpcError(INTERNAL_ERROR, rotated.error)
    return { token: rotated.token }
  },
}

const discover: PublicRpcMethod = {
  public: true,
  name: 'rpc.discover',
  summary: 'This service described as an OpenRPC document.',
  params: [],
  result: { name: 'openrpcDocument', schema: { $ref: 'https://raw.githubusercontent.com/open-rpc/meta-schema/master/schema.json' } },
  async invoke() {
    return openRpcDocument(rpcMethods)
  },
}

/** Every method; rpc.discover describes exactly this table. */
export const rpcMethods: readonly AnyRpcMethod[] = [
  getBalance,
  getAccountInfo,
  quoteMethod,
  sendPrepare,
  setRpcUrl,
  getRpcUrl,
  rotateTokenMethod,
  ...onboardingMethods,
  ...paymentMethods,
  discover,
]
