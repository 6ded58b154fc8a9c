/**
 * JSON Schema validation as the admin API and JSON-RPC use it: one Ajv setup
 * with the farm's own formats, and an error message naming the field.
 *
 * Messages come from the schema itself: a field's `description` says what it
 * must be ("must be " + description), or what it is when missing ("is
 * required (" + description + ")"); a rule over several fields (oneOf, anyOf,
 * not) says itself what is wrong in its `description`. So the text a 400 or
 * a -32602 shows is the text the published document shows.
 */
import { decodeBase64, ISO_DATE } from '@ilp-farm/protocol'
import { Ajv, type ErrorObject } from 'ajv'
import { isValidAddressSegment, isValidIlpAddress, isValidRoutePrefix } from './address.js'
import { isUInt64String } from './amount.js'

export type JsonSchema = Record<string, unknown>

/**
 * What `format` may name in the farm's schemas. Amounts are strings (a UInt64
 * does not fit a JSON number), so their range is a format: a pattern cannot
 * say "at most 18446744073709551615" readably.
 */
export const FORMATS: Readonly<Record<string, (value: string) => boolean>> = {
  /** A UInt64 as a canonical decimal string: "0" to "18446744073709551615", no leading zeros. */
  uint64: isUInt64String,
  /** A UInt64 above zero. */
  'positive-uint64': (s) => s !== '0' && isUInt64String(s),
  /** A full ILP address (RFC 15). */
  'ilp-address': isValidIlpAddress,
  /** An ILP address prefix: a scheme alone ("test") or an address. */
  'ilp-prefix': isValidRoutePrefix,
  /** One segment of an ILP address: what an account id is. */
  'account-id': isValidAddressSegment,
  /** RFC 3339 with a time zone, as ILP's JSON forms write expiries (@ilp-farm/protocol's ISO_DATE). */
  'date-time': (s) => ISO_DATE.test(s) && !Number.isNaN(new Date(s).getTime()),
  /** Standard or url-safe base64, padded or not, as @ilp-farm/protocol reads it. */
  base64: (s) => decodeBase64(s) !== undefined,
  // an http(s) URL; what the farm will call is checked further by the method that takes it
  uri: (s) => URL.canParse(s),
}

/**
 * An Ajv for request parts. Bodies and JSON-RPC params are taken as sent
 * (`coerce: false`: a number is not an amount string); a querystring or path
 * parameter is text, so it is coerced to the type its schema names.
 * `verbose` keeps the failing schema on each error, for the message.
 */
export function schemaValidator(options: { coerce: boolean }): Ajv {
  const ajv = new Ajv({
    coerceTypes: options.coerce ? 'array' : false,
    useDefaults: true,
    removeAdditional: false,
    allErrors: false,
    verbose: true,
  })
  for (const [name, validate] of Object.entries(FORMATS)) ajv.addFormat(name, { type: 'string', validate })
  return ajv
}

/**
 * The error to report of those Ajv gave: the outermost one (a oneOf's own
 * error, not those of its branches).
 */
function outermost(errors: readonly ErrorObject[]): ErrorObject {
  return errors.reduce((best, e) => (e.schemaPath.length < best.schemaPath.length ? e : best))
}

function describedBy(schema: unknown): string | undefined {
  return annotation(schema, 'description')
}

/** A string annotation of a schema (its `description`; its `title`, the name a field goes by where it is written otherwise, as a header). */
function annotation(schema: unknown, name: 'description' | 'title'): string | undefined {
  const value = schema !== null && typeof schema === 'object' ? (schema as JsonSchema)[name] : undefined
  return typeof value === 'string' ? value : undefined
}

/** The field an instance path names, as the caller wrote it: `/amount` is amount, `/accounts/0/id` is accounts[0].id. */
function fieldName(instancePath: string, whole: string): string {
  if (instancePath === '') return whole
  return instancePath
    .slice(1)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((name, part, i) => (/^\d+$/.test(part) ? `${name}[${part}]` : i === 0 ? part : `${name}.${part}`), '')
}

/**
 * One line naming the field and what is wrong with it, e.g.
 * `amount: must be a UInt64 as a decimal string` or `from: is required (the sending account's id)`.
 * `whole` names the value itself (an error at the top: "body", "params").
 */
export function schemaErrorMessage(errors: readonly ErrorObject[] | null | undefined, whole: string): string {
  if (!errors || errors.length === 0) return `${whole}: is not valid`
  const error = outermost(errors)
  const parent = error.parentSchema as JsonSchema | undefined
  if (error.keyword === 'required') {
    const missing = String((error.params as { missingProperty: string }).missingProperty)
    const properties = (parent?.properties ?? {}) as Record<string, unknown>
    const field = error.instancePath === '' ? (annotation(properties[missing], 'title') ?? missing) : `${fieldName(error.instancePath, whole)}.${missing}`
    const description = describedBy(properties[missing])
    return description === undefined ? `${field}: is required` : `${field}: is required (${description})`
  }
  if (error.keyword === 'additionalProperties') {
    const extra = String((error.params as { additionalProperty: string }).additionalProperty)
    const known = Object.keys((parent?.properties ?? {}) as Record<string, unknown>)
    return `${error.instancePath === '' ? extra : `${fieldName(error.instancePath, whole)}.${extra}`}: unknown (${known.length === 0 ? 'none is taken' : `takes ${known.join(', ')}`})`
  }
  const description = describedBy(parent)
  // a rule over several fields says in its own words what is wrong
  if (error.keyword === 'oneOf' || error.keyword === 'anyOf' || error.keyword === 'not') {
    if (description !== undefined && error.instancePath === '') return description
  }
  const field = annotation(parent, 'title') ?? fieldName(error.instancePath, whole)
  return description === undefined ? `${field}: ${error.message ?? 'is not valid'}` : `${field}: must be ${description}`
}
