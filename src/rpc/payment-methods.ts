import { isPaymentCursor, MAX_HISTORY, type PaymentEntry } from '../payments/history.js'
import { SpspError } from '../payments/spsp-client.js'
import { invalidParams, PAYMENT_ERROR, RpcError } from './protocol.js'
import type { JsonSchema, RpcContext, RpcMethod } from './types.js'

const uint64: JsonSchema = { type: 'string', pattern: '^(0|[1-9][0-9]*)$', format: 'uint64', description: 'a UInt64 as a decimal string' }
const payment: JsonSchema = {
  type: 'object',
  required: ['id', 'direction', 'state', 'amount', 'counterpart', 'assetCode', 'assetScale', 'startedAt'],
  properties: {
    id: { type: 'string' },
    direction: { enum: ['incoming', 'outgoing'] },
    state: { enum: ['running', 'completed', 'failed', 'received'], description: 'outgoing: running, then completed or failed; incoming: received' },
    amount: { ...uint64, description: 'sent (outgoing) or credited (incoming), in the account’s base units' },
    delivered: { ...uint64, description: 'outgoing: what the receiver got, in its base units' },
    counterpart: { type: 'string', description: 'outgoing: the payment pointer paid; incoming: the sender’s address (a farm account)' },
    assetCode: { type: 'string' },
    assetScale: { type: 'integer' },
    destinationAssetCode: { type: 'string' },
    destinationAssetScale: { type: 'integer' },
    startedAt: { type: 'string', format: 'date-time' },
    finishedAt: { type: 'string', format: 'date-time' },
    deadlineAt: { type: 'string', format: 'date-time', description: 'outgoing, running: when it is given up' },
    lastAt: { type: 'string', format: 'date-time', description: 'incoming: its last packet' },
    packets: { type: 'integer', description: 'incoming: its packets so far' },
    error: { type: 'string', description: 'failed: why' },
  },
}

const PAY_TIMEOUT_MS = 60_000

function paymentsOf(ctx: RpcContext): NonNullable<RpcContext['payments']> {
  if (ctx.payments === undefined) throw new RpcError(PAYMENT_ERROR, 'payments are not available here', undefined, { reason: 'disabled' })
  return ctx.payments
}

const pay: RpcMethod = {
  name: 'ilp_pay',
  summary:
    'Pays a payment pointer (or SPSP URL) from the calling account: the farm runs the STREAM sender (@interledger/pay) and its packets go through the farm like the account’s own. With wait (default true) the answer is the finished payment; else the running one, whose id ilp_getPayment follows.',
  params: [
    { name: 'paymentPointer', required: true, description: '$host/path, or an https SPSP URL', schema: { type: 'string', minLength: 2, maxLength: 2048, description: 'a payment pointer or an SPSP URL' } },
    { name: 'sourceAmount', required: true, description: 'what to send, in the caller’s base units', schema: { ...uint64, pattern: '^[1-9][0-9]{0,19}$' } },
    { name: 'wait', required: false, description: 'answer once the payment has ended (default true; at most 60 s)', schema: { type: 'boolean', description: 'true or false' } },
  ],
  result: { name: 'payment', schema: payment },
  errors: [{ code: PAYMENT_ERROR, message: 'the payment could not start: data.reason is disabled or bad-pointer (the pointer or its SPSP server)' }],
  async invoke(ctx, params: { paymentPointer?: string; sourceAmount?: string; wait?: boolean }) {
    const { payer } = paymentsOf(ctx)
    try {
      const { entry, done } = await payer.start(ctx.account, { paymentPointer: params.paymentPointer!, sourceAmount: params.sourceAmount! }, PAY_TIMEOUT_MS)
      return params.wait === false ? entry : await done
    } catch (err) {
      if (err instanceof SpspError) throw new RpcError(PAYMENT_ERROR, err.message, undefined, { reason: 'bad-pointer' })
      throw err
    }
  },
}

const getPayment: RpcMethod = {
  name: 'ilp_getPayment',
  summary: 'One payment of the calling account, by id: an ilp_pay still running, or any entry of its history.',
  params: [{ name: 'id', required: true, description: 'as ilp_pay or ilp_getPayments gave it', schema: { type: 'string', minLength: 1, maxLength: 100, description: 'a payment id' } }],
  result: { name: 'payment', schema: payment },
  errors: [{ code: PAYMENT_ERROR, message: 'no such payment: data.reason is not-found' }],
  async invoke(ctx, params: { id?: string }) {
    const found: PaymentEntry | undefined = await paymentsOf(ctx).history.get(ctx.account.id, params.id!)
    if (found === undefined) throw new RpcError(PAYMENT_ERROR, `no payment ${params.id!} of this account`, undefined, { reason: 'not-found' })
    return found
  },
}

const getPayments: RpcMethod = {
  name: 'ilp_getPayments',
  summary: `The calling account’s payments, newest first: outgoing ones (ilp_pay) and incoming ones (its payment pointer, one per STREAM connection). The farm keeps the last ${MAX_HISTORY}.`,
  params: [
    { name: 'cursor', required: false, description: 'from the page before: the next page has older payments', schema: { type: 'string', pattern: '^[0-9]{1,20}$', description: 'a cursor ilp_getPayments gave' } },
    { name: 'limit', required: false, description: 'at most this many (1 to 100, default 20)', schema: { type: 'integer', minimum: 1, maximum: 100, description: 'a whole number from 1 to 100' } },
  ],
  result: {
    name: 'page',
    schema: {
      type: 'object',
      required: ['payments'],
      properties: { payments: { type: 'array', items: payment }, cursor: { type: 'string', description: 'absent on the last page' } },
    },
  },
  async invoke(ctx, params: { cursor?: string; limit?: number }) {
    if (params.cursor !== undefined && !isPaymentCursor(params.cursor)) throw invalidParams('cursor must be one ilp_getPayments gave')
    return paymentsOf(ctx).history.list(ctx.account.id, { cursor: params.cursor, limit: params.limit ?? 20 })
  },
}

export const paymentMethods: readonly RpcMethod[] = [pay, getPayment, getPayments]
