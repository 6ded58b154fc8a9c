import type { FastifyInstance } from 'fastify'
import type { AccountDirectory } from '../accounts/registry.js'
import type { HostedReceiver, ReceiptSetup } from '../receiver/hosted-receiver.js'
import { isValidAddressSegment } from '../util/address.js'

/** RFC 9: what an SPSP client asks for, and what the answer is. */
export const SPSP_CONTENT_TYPE = 'application/spsp4+json'

const spspSchema = {
  summary: 'SPSP: connection details for a STREAM payment to a child account, received by the farm',
  params: {
    type: 'object',
    required: ['id'],
    properties: { id: { type: 'string', minLength: 1, maxLength: 64 } },
  },
  headers: {
    type: 'object',
    properties: {
      'receipt-nonce': { type: 'string', maxLength: 64, description: 'RFC 39: 16 bytes, base64; with receipt-secret' },
      'receipt-secret': { type: 'string', maxLength: 64, description: 'RFC 39: 32 bytes, base64; with receipt-nonce' },
    },
  },
  response: {
    200: {
      type: 'object',
      required: ['destination_account', 'shared_secret', 'receipts_enabled'],
      properties: {
        destination_account: { type: 'string' },
        shared_secret: { type: 'string', description: '32 bytes, base64' },
        receipts_enabled: { type: 'boolean' },
      },
    },
    400: { type: 'object', required: ['error'], properties: { error: { type: 'string' } } },
    404: { type: 'object', required: ['error'], properties: { error: { type: 'string' } } },
  },
} as const

/** The receipt setup an SPSP request asks for (RFC 39): both headers, or neither. */
function receiptSetup(nonce: string | undefined, secret: string | undefined): ReceiptSetup | undefined | 'invalid' {
  if (nonce === undefined && secret === undefined) return undefined
  const n = nonce === undefined ? undefined : Buffer.from(nonce, 'base64')
  const s = secret === undefined ? undefined : Buffer.from(secret, 'base64')
  return n?.length === 16 && s?.length === 32 ? { nonce: n, secret: s } : 'invalid'
}

/**
 * `GET /accounts/:id/spsp`: the payment pointer `$<host>/accounts/<id>/spsp`
 * of a child account, answered by the farm's own receiver, so the account is
 * paid while its user is offline. Public, as SPSP is; the answer is
 * stateless (nothing is written) and names no balance.
 */
export function spspEndpoint(deps: { receiver: HostedReceiver; accounts: AccountDirectory }) {
  return async (app: FastifyInstance): Promise<void> => {
    app.get<{ Params: { id: string }; Headers: { 'receipt-nonce'?: string; 'receipt-secret'?: string } }>('/accounts/:id/spsp', { schema: spspSchema }, async (request, reply) => {
      const { id } = request.params
      const receipts = receiptSetup(request.headers['receipt-nonce'], request.headers['receipt-secret'])
      if (receipts === 'invalid') return reply.code(400).send({ error: 'Receipt-Nonce (16 bytes) and Receipt-Secret (32 bytes), base64, come together' })
      const loaded = isValidAddressSegment(id) ? (deps.accounts.peek(id) ?? (await deps.accounts.load(id))) : undefined
      if (loaded === undefined || loaded.account.relation !== 'child') {
        return reply.code(404).send({ error: `no account ${id} receives payments here` })
      }
      reply.header('cache-control', 'no-store')
      return reply.type(SPSP_CONTENT_TYPE).send(deps.receiver.spsp(loaded.account, receipts))
    })
  }
}
