/**
 * The JSON schemas of the admin API: fastify validates requests with them
 * (src/util/json-schema.ts, whose messages come from each field's
 * `description`), serializes answers with them, and GET /admin/openapi.json
 * publishes them. An object that another module owns and may grow (a worker's
 * heartbeat, a route candidate, a packet in flight) is declared with the
 * fields known here and `additionalProperties: true`: the serializer drops
 * any property a response schema does not declare.
 */
import type { FastifySchema } from 'fastify'
import { MAX_IDEMPOTENCY_KEY_LENGTH } from '../accounts/adjustments.js'
import { DEFAULT_TICKET_LIFETIME_MS, MAX_TICKET_LIFETIME_MS } from '../onboarding/onboarding.js'
import { QUOTE_SCHEMA } from '../rates/quote.js'
import type { JsonSchema } from '../util/json-schema.js'

/** Accounts per page of GET /admin/accounts: by default, and at most. */
export const DEFAULT_PAGE = 100
export const MAX_PAGE = 1_000
/** Accounts per POST /admin/accounts/import. */
export const MAX_IMPORT_BATCH = 10_000

const UINT64_TEXT = 'a decimal string in quotes, a non-negative integer no larger than 18446744073709551615'

const string = { type: 'string' }
const strings = { type: 'array', items: string }
const nullableString = { type: ['string', 'null'] }
/** A signed integer of any size as a decimal string (balances). */
const integerString = { type: 'string', description: 'an integer decimal string' }

/** Every error answer: `error` says what is wrong; `issues` lists each field of an invalid account. */
const errorBody = (description: string): JsonSchema => ({
  type: 'object',
  description,
  required: ['error'],
  properties: {
    error: string,
    issues: { ...strings, description: 'for an invalid account: "<field>: <reason>" each' },
    scope: { ...string, description: 'for a 403: the scope the token lacks' },
    code: { ...string, description: 'for a quote refused: the ILP error code a packet would get' },
  },
  additionalProperties: true,
})

/** The refusals every route shares (the operator token, checked before anything else). */
const AUTH_ERRORS = {
  401: errorBody('no operator token, or an unknown one'),
  403: errorBody('the token lacks the route\'s scope (named in scope)'),
  429: errorBody('too many failed token checks from this address; Retry-After says when to try again'),
}

function responses(ok: Record<number, JsonSchema>, errors: Record<number, string> = {}): Record<number, JsonSchema> {
  return { ...ok, ...Object.fromEntries(Object.entries(errors).map(([code, description]) => [code, errorBody(description)])), ...AUTH_ERRORS }
}

const accountId = { type: 'string', description: 'the account id' }
const idParams = { type: 'object', required: ['id'], properties: { id: accountId } }
const prefixParams = {
  type: 'object',
  required: ['prefix'],
  properties: { prefix: { type: 'string', format: 'ilp-prefix', description: 'an ILP address prefix such as "g.bank" or "test" (RFC 15)' } },
}
/** An account as the config file's accounts[] has it; the config's own checks apply (their messages name each field). */
const accountBody = {
  type: 'object',
  description: 'a JSON object: one account, as in the config file',
  additionalProperties: true,
}

/** An account as the admin API shows it: everything but its tokens, so a client can send it back whole (PUT). */
const accountView: JsonSchema = {
  type: 'object',
  properties: {
    id: string,
    relation: { type: 'string', enum: ['parent', 'peer', 'child'] },
    assetCode: string,
    assetScale: { type: 'integer' },
    balance: { ...integerString, description: 'cold plus every shard\'s hot balance: positive, the farm owes the holder' },
    cold: integerString,
    hot: { type: 'object', additionalProperties: string, description: 'each shard\'s hot balance' },
    creditsInFlight: { ...string, description: 'headroom reserved against maxBalance by packets in flight towards the account' },
    minBalance: string,
    maxBalance: nullableString,
    maxPacketAmount: nullableString,
    settleThreshold: nullableString,
    settleTo: nullableString,
    origin: { type: 'string', description: 'who made it: config, admin, ticket, signup' },
    parallelism: { type: ['integer', 'null'] },
    metrics: { type: ['boolean', 'null'] },
    incoming: {
      type: ['object', 'null'],
      properties: { callbackUrls: { type: ['array', 'null'], items: string } },
      description: 'null: no incoming token',
    },
    allowedUrlPrefixes: { ...strings, description: 'what an RPC URL or an async Callback-Url must start with' },
    outgoing: {
      type: ['object', 'null'],
      properties: { url: string, mode: string, hasToken: { type: 'boolean' }, tokenEnv: string, tokenFile: string },
    },
    rpcUrl: nullableString,
    paymentPointer: { ...nullableString, description: 'a child’s payment pointer, received by the farm; null for a parent or peer' },
    spspUrl: { ...nullableString, description: 'the SPSP URL of that pointer, as this request reached the farm' },
    routes: strings,
    sendRoutes: { type: 'boolean' },
    receiveRoutes: { type: 'boolean' },
  },
}

const candidates = { type: 'object', properties: { prefix: string, candidates: strings } }

const quoteAmount = { type: 'string', format: 'uint64', description: UINT64_TEXT }

/** Each admin route's schema and the operator scope it needs, by `METHOD url` as registered under /admin. */
export const ADMIN_SCHEMAS = {
  'GET /accounts': {
    summary: 'One page of the accounts, in id order',
    querystring: {
      type: 'object',
      properties: {
        cursor: { type: 'string', format: 'account-id', description: 'an account id (the nextCursor of the previous page)' },
        limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE, default: DEFAULT_PAGE, description: `a whole number from 1 to ${MAX_PAGE}` },
      },
    },
    response: responses(
      { 200: { type: 'object', properties: { accounts: { type: 'array', items: accountView }, nextCursor: { ...nullableString, description: 'null on the last page' } } } },
      { 400: 'a bad limit or cursor' },
    ),
  },
  'GET /accounts/:id': {
    summary: 'One account',
    params: idParams,
    response: responses({ 200: accountView }, { 404: 'no such account' }),
  },
  'POST /accounts': {
    summary: 'Creates an account at runtime, validated like the config file',
    querystring: {
      type: 'object',
      properties: { reuseDeletedId: { type: 'boolean', default: false, description: 'true or false: take the id of a deleted account, and its recorded balance' } },
    },
    body: accountBody,
    response: responses(
      {
        201: {
          type: 'object',
          properties: {
            account: accountView,
            token: { ...string, description: 'the incoming token the farm made, shown once' },
            inherited: { type: 'object', properties: { balance: string, note: string } },
          },
        },
      },
      { 400: 'an invalid account (issues name each field)', 409: 'the id is taken, or belonged to a deleted account' },
    ),
  },
  'POST /accounts/import': {
    summary: 'Many accounts at once, each validated like POST /admin/accounts',
    querystring: { type: 'object', properties: { update: { type: 'boolean', default: false, description: 'true or false: replace an account that differs' } } },
    body: { type: 'array', maxItems: MAX_IMPORT_BATCH, description: `a JSON array of at most ${MAX_IMPORT_BATCH} accounts, as in the config file` },
    response: responses(
      {
        200: {
          type: 'object',
          properties: {
            results: {
              type: 'array',
              items: {
                type: 'object',
                properties: { outcome: { type: 'string', description: 'created, updated, unchanged, exists, deleted, token-taken, conflict or invalid' }, id: string, token: string, error: string, issues: strings },
                additionalProperties: true,
              },
            },
          },
        },
      },
      { 400: 'not an array, or too long' },
    ),
  },
  'PUT /accounts/:id': {
    summary: 'Replaces an account whole',
    params: idParams,
    body: accountBody,
    response: responses({ 200: accountView }, { 400: 'an invalid account, or another id', 404: 'no such account' }),
  },
  'DELETE /accounts/:id': {
    summary: 'Deletes an account; its balance stays recorded',
    params: idParams,
    response: responses({ 200: { type: 'object', properties: { id: string, balance: integerString } } }, { 404: 'no such account' }),
  },
  'POST /accounts/:id/token': {
    summary: "Replaces the account's incoming token; the new one is shown once",
    params: idParams,
    response: responses({ 200: { type: 'object', properties: { id: string, token: string } } }, { 404: 'no such account' }),
  },
  'POST /accounts/:id/deposits': adjustment('deposit'),
  'POST /accounts/:id/withdrawals': adjustment('withdrawal'),
  'POST /tickets': {
    summary: 'An invitation ticket: redeemed over JSON-RPC (ilp_redeemTicket), it creates the account',
    body: {
      type: 'object',
      description: 'a JSON object { "account": { relation, assetCode, assetScale, limits... }, "id"?, "callbackUrls"?, "expiresInMs"? }',
      required: ['account'],
      properties: {
        account: { type: 'object', additionalProperties: true, description: 'the new account as in the config file, without id and incoming' },
        id: { type: 'string', minLength: 1, description: 'a non-empty string: the new account\'s id (default: the redeemer picks, or one is made)' },
        callbackUrls: { ...strings, description: 'an array of URL prefixes the account\'s RPC URL and Callback-Urls may start with' },
        expiresInMs: {
          type: 'integer',
          minimum: 1,
          maximum: MAX_TICKET_LIFETIME_MS,
          default: DEFAULT_TICKET_LIFETIME_MS,
          description: `a whole number of milliseconds from 1 to ${MAX_TICKET_LIFETIME_MS}`,
        },
      },
    },
    response: responses({ 201: { type: 'object', properties: { ticket: string, expiresAt: { ...string, description: 'ISO 8601' } } } }, { 400: 'an invalid account or field' }),
  },
  'GET /settlements': {
    summary: 'The recent settlement requests (balances that crossed settleThreshold)',
    response: responses({
      200: {
        type: 'array',
        items: {
          type: 'object',
          properties: { id: string, account: string, amount: string, balance: string, threshold: string, settleTo: string, requestedAt: string },
          additionalProperties: true,
        },
      },
    }),
  },
  'GET /hotset': { summary: 'The packets in flight (the same answer as /admin/inflight)', response: responses({ 200: inFlight() }) },
  'GET /inflight': { summary: 'The packets in flight: their incoming records, owners and expiries', response: responses({ 200: inFlight() }) },
  'GET /workers': {
    summary: 'The live workers of every host, the hosts, and the leader',
    response: responses({
      200: {
        type: 'object',
        properties: {
          leader: { ...nullableString, description: 'the boot id of the leader; null: nobody holds the lease' },
          leaderHostId: nullableString,
          hosts: { type: 'array', items: { type: 'object', properties: { hostId: string, workers: { type: 'integer' }, leader: { type: 'boolean' } }, additionalProperties: true } },
          workers: {
            type: 'array',
            items: {
              type: 'object',
              properties: { hostId: string, shard: { type: 'integer' }, bootId: string, pid: { type: 'integer' }, host: string, heartbeatAgeMs: { type: 'number' }, leader: { type: 'boolean' } },
              additionalProperties: true,
            },
          },
        },
      },
    }),
  },
  'GET /routes': {
    summary: 'The routing table: every prefix and its candidates, with liquidity and farm-wide counts',
    response: responses({
      200: {
        type: 'object',
        properties: {
          policy: string,
          ilpAddress: string,
          routes: {
            type: 'array',
            items: {
              type: 'object',
              properties: { prefix: string, candidates: { type: 'array', items: { type: 'object', properties: { account: string, source: string }, additionalProperties: true } } },
            },
          },
        },
      },
    }),
  },
  'PUT /routes/:prefix': {
    summary: 'Adds a static candidate for a prefix',
    params: prefixParams,
    body: {
      type: 'object',
      description: 'a JSON object { "account": "<next hop\'s account id>" }',
      required: ['account'],
      properties: { account: { type: 'string', minLength: 1, description: "the next hop's account id" } },
    },
    response: responses({ 200: candidates }, { 400: 'a bad prefix, or an account that is missing or cannot be reached' }),
  },
  'DELETE /routes/:prefix': {
    summary: 'Removes a static candidate of a prefix, or all of them',
    params: prefixParams,
    querystring: { type: 'object', properties: { account: { type: 'string', description: 'the candidate to remove; none: every static candidate of the prefix' } } },
    response: responses({ 200: candidates }, { 404: 'no such static route' }),
  },
  'POST /quote': {
    summary: 'A quote: the other amount and the next hop for one packet',
    // in steps, each said in its own words: Ajv checks a oneOf before the type and the fields of the schema
    // holding it, and a body that is no object, or lacks a field, is to hear that first
    body: {
      allOf: [
        { type: 'object', description: 'a JSON object { "from", "destination", "sourceAmount" or "destinationAmount" }' },
        {
          type: 'object',
          required: ['from', 'destination'],
          properties: {
            from: { type: 'string', minLength: 1, description: "the sending account's id" },
            destination: { type: 'string', format: 'ilp-address', description: 'an ILP address such as "test.farm.bob" (RFC 15)' },
            sourceAmount: quoteAmount,
            destinationAmount: quoteAmount,
          },
        },
        { description: 'give exactly one of sourceAmount and destinationAmount', oneOf: [{ type: 'object', required: ['sourceAmount'] }, { type: 'object', required: ['destinationAmount'] }] },
      ],
    },
    response: responses(
      { 200: QUOTE_SCHEMA },
      { 400: 'bad input, or an unknown sender', 422: 'a packet would be refused: code F02 (no route or rate), R01 (rounds to zero) or F08 (beyond UInt64)' },
    ),
  },
  'GET /openapi.json': {
    summary: 'This API as an OpenAPI 3.1 document, generated from the schemas the routes validate with',
    response: responses({ 200: { type: 'object', additionalProperties: true } }),
  },
} as const satisfies Record<string, FastifySchema>

export type AdminRoute = keyof typeof ADMIN_SCHEMAS

function adjustment(kind: 'deposit' | 'withdrawal'): FastifySchema {
  return {
    summary: kind === 'deposit' ? 'Credits the account (money received outside ILP)' : 'Debits the account (money paid out); never below minBalance',
    params: idParams,
    headers: {
      type: 'object',
      required: ['idempotency-key'],
      properties: {
        'idempotency-key': {
          type: 'string',
          title: 'Idempotency-Key',
          minLength: 1,
          maxLength: MAX_IDEMPOTENCY_KEY_LENGTH,
          description: `a header of 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters; a retry with the same key applies once`,
        },
      },
    },
    body: {
      type: 'object',
      description: 'a JSON object { "amount": "<base units>" }',
      required: ['amount'],
      properties: { amount: { type: 'string', format: 'positive-uint64', description: 'a positive integer decimal string in quotes, no larger than 18446744073709551615' } },
    },
    response: responses(
      {
        200: {
          type: 'object',
          properties: {
            id: string,
            kind: { type: 'string', enum: [kind] },
            amount: string,
            balance: integerString,
            applied: { type: 'boolean', description: 'false: this Idempotency-Key was applied before; nothing changed' },
            settlementId: { ...string, description: 'the settlement request this change triggered' },
          },
        },
      },
      {
        400: 'a bad amount or Idempotency-Key',
        404: 'no such account',
        422: kind === 'deposit' ? 'the Idempotency-Key was used for another request' : 'below minBalance, or the Idempotency-Key was used for another request',
        503: 'applied, but no replica confirmed it in time: retry with the same Idempotency-Key',
      },
    ),
  }
}

function inFlight(): JsonSchema {
  return {
    type: 'array',
    items: {
      type: 'object',
      properties: {
        incomingAccount: string,
        packetId: string,
        shard: { type: 'integer' },
        bootId: string,
        attempt: string,
        expiresAtMs: { type: 'number' },
        inAmount: string,
        outgoingAccount: string,
        outAmount: string,
      },
      additionalProperties: true,
    },
  }
}
