import type { AnyRpcMethod } from './types.js'

const VERSION = '0.1.0'

const base64 = { type: 'string', contentEncoding: 'base64' }

/** The method the farm calls on a user's RPC URL (docs/JSON-RPC.md), described as an OpenRPC method. */
const RECEIVE_PREPARE = {
  name: 'ilp_receivePrepare',
  summary: "An incoming Prepare for the account, POSTed to its RPC URL with Bearer <the account's outgoing.token> when set; answer with the Fulfill or Reject.",
  paramStructure: 'by-name',
  params: [
    { name: 'amount', required: true, schema: { type: 'string', pattern: '^[0-9]+$' } },
    { name: 'destination', required: true, schema: { type: 'string' } },
    { name: 'executionCondition', required: true, schema: base64 },
    { name: 'expiresAt', required: true, schema: { type: 'string', format: 'date-time' } },
    { name: 'data', required: true, schema: base64 },
  ],
  result: {
    name: 'reply',
    schema: {
      oneOf: [
        { type: 'object', required: ['type', 'fulfillment'], properties: { type: { const: 'fulfill' }, fulfillment: base64, data: base64 } },
        { type: 'object', required: ['type', 'code'], properties: { type: { const: 'reject' }, code: { type: 'string' }, triggeredBy: { type: 'string' }, message: { type: 'string' }, data: base64 } },
      ],
    },
  },
}

const built = new WeakMap<readonly AnyRpcMethod[], Readonly<Record<string, unknown>>>()

/**
 * The OpenRPC 1.3 document for rpc.discover, built from the method table itself so it cannot drift from it.
 * Built once per table: every rpc.discover, however many a batch holds, answers the same object.
 */
export function openRpcDocument(methods: readonly AnyRpcMethod[]): Readonly<Record<string, unknown>> {
  let document = built.get(methods)
  if (document === undefined) {
    document = Object.freeze(buildDocument(methods))
    built.set(methods, document)
  }
  return document
}

function buildDocument(methods: readonly AnyRpcMethod[]): Record<string, unknown> {
  return {
    openrpc: '1.3.2',
    info: {
      title: 'ilp-farm JSON-RPC',
      version: VERSION,
      description:
        'JSON-RPC 2.0 at POST /rpc, Authorization: Bearer <the account\'s incoming.token>. Every method acts on the account the token belongs to; the onboarding methods (x-public) need no token. Application errors: code 1 with data.ilpCode; code 2 (onboarding refused) with data.reason.',
    },
    methods: methods.map((m) => ({
      name: m.name,
      summary: m.summary,
      paramStructure: 'by-name',
      params: m.params.map((p) => ({ name: p.name, required: p.required, description: p.description, schema: p.schema })),
      result: { name: m.result.name, schema: m.result.schema },
      ...(m.errors === undefined ? {} : { errors: m.errors.map((e) => ({ ...e })) }),
    })),
    // not served here: what the farm calls on an account's own RPC URL (ilp_setRpcUrl)
    'x-calls-to-user': [RECEIVE_PREPARE],
  }
}
