/**
 * A JSON-RPC method's params checked against the schemas rpc.discover
 * publishes for them: the method's ParamSpecs become one object schema
 * (each param's schema, the required ones, no other names), compiled once.
 * A method then gets params of the forms it declared; what a schema cannot
 * say (a rule over two params, a URL the operator must allow) it checks itself.
 */
import type { ValidateFunction } from 'ajv'
import { schemaErrorMessage, schemaValidator, type JsonSchema } from '../util/json-schema.js'
import { invalidParams } from './protocol.js'
import type { AnyRpcMethod } from './types.js'

/** The params object of a method as one JSON Schema. */
export function paramsSchema(method: AnyRpcMethod): JsonSchema {
  return {
    type: 'object',
    properties: Object.fromEntries(method.params.map((p) => [p.name, p.schema])),
    required: method.params.filter((p) => p.required).map((p) => p.name),
    additionalProperties: false,
  }
}

/** Checks the named params of each method of a table; one compiled validator per method. */
export class ParamsChecker {
  private readonly validators = new Map<string, ValidateFunction>()

  constructor(methods: readonly AnyRpcMethod[]) {
    const ajv = schemaValidator({ coerce: false })
    for (const method of methods) this.validators.set(method.name, ajv.compile(paramsSchema(method)))
  }

  /**
   * Named params only (an empty array or no params for a method without any); a param the method does
   * not declare, a missing required one, or a value not of its schema is -32602 naming the param.
   */
  check(method: AnyRpcMethod, params: unknown): Record<string, unknown> {
    if (params === undefined || params === null) params = {}
    if (Array.isArray(params)) {
      if (params.length > 0) throw invalidParams('params must be given by name (an object)')
      params = {}
    }
    const validate = this.validators.get(method.name)
    if (validate === undefined) throw new Error(`JSON-RPC: ${method.name} is not in the table the params checker was built from`)
    if (validate(params)) return params as Record<string, unknown>
    const error = validate.errors?.[0]
    if (error?.keyword === 'additionalProperties') {
      const names = method.params.map((p) => p.name)
      const extra = (error.params as { additionalProperty: string }).additionalProperty
      throw invalidParams(`unknown param "${extra}" (${method.name} takes ${names.length === 0 ? 'none' : names.join(', ')})`)
    }
    throw invalidParams(schemaErrorMessage(validate.errors, 'params'))
  }
}
