import type { RpcMethod } from './methods.js'

const VERSION = '0.1.0'

/** The OpenRPC 1.3 document for rpc.discover, built from the method table itself so it cannot drift from it. */
export function openRpcDocument(methods: readonly RpcMethod[]): Record<string, unknown> {
  return {
    openrpc: '1.3.2',
    info: {
      title: 'ilp-farm JSON-RPC',
      version: VERSION,
      description:
        'JSON-RPC 2.0 at POST /rpc, Authorization: Bearer <the account\'s incoming.token>. Every method acts on the account the token belongs to. Application errors: code 1 with data.ilpCode.',
    },
    methods: methods.map((m) => ({
      name: m.name,
      summary: m.summary,
      paramStructure: 'by-name',
      params: m.params.map((p) => ({ name: p.name, required: p.required, description: p.description, schema: p.schema })),
      result: { name: m.result.name, schema: m.result.schema },
      ...(m.errors === undefined ? {} : { errors: m.errors.map((e) => ({ ...e })) }),
    })),
  }
}
