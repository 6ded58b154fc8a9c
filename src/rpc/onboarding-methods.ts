import { OnboardingError } from '../onboarding/onboarding.js'
import { ONBOARDING_REFUSED, RpcError } from './protocol.js'
import type { CallerContext, JsonSchema, PublicRpcMethod } from './types.js'

const newAccount: JsonSchema = {
  type: 'object',
  required: ['id', 'token', 'ilpAddress', 'assetCode', 'assetScale'],
  properties: {
    id: { type: 'string' },
    token: { type: 'string', description: 'the bearer token of the new account: shown once, the farm keeps only its SHA-256' },
    ilpAddress: { type: 'string' },
    assetCode: { type: 'string' },
    assetScale: { type: 'integer' },
  },
}
const REFUSED = [
  {
    code: ONBOARDING_REFUSED,
    message:
      'refused: data.reason is invalid-ticket, invalid-challenge, wrong-solution, id-taken, invalid-account, signup-disabled, rate-limited (with data.retryAfterMs) or signup-full',
  },
]
// the id is checked by the onboarding service (reserved, taken, its form): a refusal there is error 2 with a reason
const wantedId = { name: 'id', required: false, description: 'the account id wanted (1-64 of a-z A-Z 0-9 _ ~ -); default: one is made', schema: { type: 'string', description: 'a string' } }
/** A ticket or a challenge as the farm gave it. */
const token = (what: string): JsonSchema => ({ type: 'string', minLength: 1, maxLength: 200, description: `a non-empty string of at most 200 characters (${what})` })

/** Runs an onboarding step; a refusal becomes error 2 with its reason. */
async function onboard<T>(ctx: CallerContext, step: (o: NonNullable<CallerContext['onboarding']>) => Promise<T>): Promise<T> {
  if (ctx.onboarding === undefined) throw new RpcError(ONBOARDING_REFUSED, 'onboarding is not available here', undefined, { reason: 'signup-disabled' })
  try {
    return await step(ctx.onboarding)
  } catch (err) {
    if (err instanceof OnboardingError) {
      throw new RpcError(ONBOARDING_REFUSED, err.message, undefined, { reason: err.reason, ...(err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : {}) })
    }
    throw err
  }
}

const redeemTicket: PublicRpcMethod = {
  public: true,
  name: 'ilp_redeemTicket',
  summary: 'Redeems an invitation ticket (issued by the operator): creates its account and returns the token. No Authorization needed; a ticket works once, before it expires.',
  params: [{ name: 'ticket', required: true, description: 'the ticket as the operator gave it', schema: token('the ticket as the operator gave it') }, wantedId],
  result: { name: 'account', schema: newAccount },
  errors: REFUSED,
  invoke: (ctx, params: { ticket?: string; id?: string }) => onboard(ctx, (o) => o.redeemTicket(params.ticket!, params.id)),
}

const getSignupChallenge: PublicRpcMethod = {
  public: true,
  name: 'ilp_getSignupChallenge',
  summary: 'A proof-of-work challenge for open sign-up (when the farm enables it): find a decimal nonce such that SHA-256(challenge || nonce) starts with `difficulty` zero bits.',
  params: [],
  result: {
    name: 'challenge',
    schema: { type: 'object', properties: { challenge: { type: 'string' }, difficulty: { type: 'integer' }, expiresAt: { type: 'string', format: 'date-time' } } },
  },
  errors: REFUSED,
  invoke: (ctx) => onboard(ctx, (o) => o.challenge(ctx.ip)),
}

const signUp: PublicRpcMethod = {
  public: true,
  name: 'ilp_signUp',
  summary: 'Open sign-up: a solved challenge gets a child account with the farm’s sign-up limits. Each challenge works once.',
  params: [
    { name: 'challenge', required: true, description: 'from ilp_getSignupChallenge', schema: token('the challenge ilp_getSignupChallenge gave') },
    { name: 'nonce', required: true, description: 'the solution, a decimal string', schema: { type: 'string', pattern: '^[0-9]{1,20}$', description: 'a decimal string of 1 to 20 digits' } },
    wantedId,
  ],
  result: { name: 'account', schema: newAccount },
  errors: REFUSED,
  invoke: (ctx, params: { challenge?: string; nonce?: string; id?: string }) => onboard(ctx, (o) => o.signUp(params.challenge!, params.nonce!, params.id, ctx.ip)),
}

export const onboardingMethods: readonly PublicRpcMethod[] = [redeemTicket, getSignupChallenge, signUp]
