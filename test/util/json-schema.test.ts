// The farm's JSON Schema setup: its formats at their bounds, coercion by request part, and messages that name the field.
import { describe, expect, it } from 'vitest'
import { schemaErrorMessage, schemaValidator } from '../../src/util/json-schema.js'

const strict = schemaValidator({ coerce: false })
const coercing = schemaValidator({ coerce: true })

/** The message for a value, or undefined when the schema takes it. */
function refusal(schema: Record<string, unknown>, value: unknown, whole = 'body'): string | undefined {
  const validate = strict.compile(schema)
  return validate(value) ? undefined : schemaErrorMessage(validate.errors, whole)
}

describe('formats', () => {
  const takes = (format: string, value: string) => refusal({ type: 'string', format }, value) === undefined

  it('uint64: canonical decimal strings from 0 to 2^64 - 1', () => {
    for (const ok of ['0', '1', '18446744073709551615']) expect(takes('uint64', ok), ok).toBe(true)
    for (const bad of ['18446744073709551616', '01', '-1', '1.0', '1e3', ' 1', '']) expect(takes('uint64', bad), bad).toBe(false)
    expect(takes('positive-uint64', '0')).toBe(false)
    expect(takes('positive-uint64', '18446744073709551615')).toBe(true)
  })

  it('ilp-address, ilp-prefix and account-id as RFC 15 has them', () => {
    expect(takes('ilp-address', 'test.farm.bob')).toBe(true)
    expect(takes('ilp-address', 'test')).toBe(false)
    expect(takes('ilp-prefix', 'test')).toBe(true)
    expect(takes('ilp-prefix', 'nope.bob')).toBe(false)
    expect(takes('account-id', 'alice_1~x-y')).toBe(true)
    for (const bad of ['a.b', '', 'x'.repeat(65)]) expect(takes('account-id', bad), bad).toBe(false)
  })

  it('date-time with a time zone and a real date; base64 standard or url-safe', () => {
    expect(takes('date-time', '2030-01-01T00:00:00.000Z')).toBe(true)
    expect(takes('date-time', '2030-01-01T00:00:00+02:00')).toBe(true)
    for (const bad of ['2030-01-01T00:00:00', '2030-13-01T00:00:00Z', 'tomorrow']) expect(takes('date-time', bad), bad).toBe(false)
    for (const ok of ['', 'aGVsbG8=', 'aGVsbG8', '-_-_']) expect(takes('base64', ok), ok).toBe(true)
    for (const bad of ['a', '***', 'aGVsbG8===']) expect(takes('base64', bad), bad).toBe(false)
  })
})

describe('request parts', () => {
  it('a body is taken as sent; a query parameter is read as its type', () => {
    const schema = { type: 'object', properties: { limit: { type: 'integer' }, amount: { type: 'string' } } }
    expect(strict.compile(schema)({ amount: 5 })).toBe(false)
    const query: Record<string, unknown> = { limit: '10' }
    expect(coercing.compile(schema)(query)).toBe(true)
    expect(query.limit).toBe(10)
  })
})

describe('messages', () => {
  const body = {
    type: 'object',
    description: 'a JSON object { "amount" }',
    required: ['amount'],
    properties: {
      amount: { type: 'string', format: 'uint64', description: 'a UInt64 as a decimal string' },
      key: { type: 'string', title: 'Idempotency-Key', maxLength: 3, description: 'at most 3 characters' },
      items: { type: 'array', items: { type: 'object', properties: { id: { type: 'string' } } } },
    },
  }

  it('name the field and say what it must be, in the words of its description', () => {
    expect(refusal(body, [])).toBe('body: must be a JSON object { "amount" }')
    expect(refusal(body, {})).toBe('amount: is required (a UInt64 as a decimal string)')
    expect(refusal(body, { amount: 7 })).toBe('amount: must be a UInt64 as a decimal string')
    expect(refusal(body, { amount: '1', key: 'long' })).toBe('Idempotency-Key: must be at most 3 characters')
    // a field without a description: Ajv's own words, the path written as the caller wrote it
    expect(refusal(body, { amount: '1', items: [{}, { id: 5 }] })).toBe('items[1].id: must be string')
  })

  it('a rule over several fields says itself what is wrong, not what its branches missed', () => {
    const either = { type: 'object', allOf: [{ description: 'give exactly one of a and b', oneOf: [{ type: 'object', required: ['a'] }, { type: 'object', required: ['b'] }] }] }
    expect(refusal(either, {})).toBe('give exactly one of a and b')
    expect(refusal(either, { a: 1, b: 2 })).toBe('give exactly one of a and b')
    expect(refusal(either, { a: 1 })).toBeUndefined()
  })

  it('an unknown field is named with what is taken', () => {
    expect(refusal({ type: 'object', properties: { a: {}, b: {} }, additionalProperties: false }, { c: 1 })).toBe('c: unknown (takes a, b)')
  })
})
