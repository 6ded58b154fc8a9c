/**
 * ilp-farm-client: use a farm from behind NAT (README.md, the farm's docs/CLIENT.md).
 *
 * FarmClient talks to the farm's JSON-RPC API, keeps a local endpoint
 * reachable through a LocalTunnel and pays and receives with STREAM.
 * RpcPlugin is the ILP plugin underneath. The tunnel server is the farm's
 * (`ilp-farm tunnel-server`), not part of this package.
 */
import './stream-compat.js'

export {
  DEFAULT_TUNNEL_HOST,
  FarmClient,
  type FarmClientEvents,
  type FarmClientOptions,
  type MoneyEvent,
  PaymentError,
  type PaymentProgress,
  type PaymentReject,
  type PaymentResult,
  type PaymentTarget,
  type PayOptions,
  type ReceiveInfo,
} from './farm-client.js'
export { LocalEndpoint, type LocalEndpointOptions, type SpspDetails } from './endpoint.js'
export { type DataHandler, IncomingRouter, type PrepareSender, RpcPlugin, type RpcPluginOptions } from './plugin.js'
export { type AccountInfo, type Balance, FarmRpc, FarmRpcError, FarmTransportError } from './rpc.js'
export { resolveSpsp, spspUrlOf, type StreamDestination } from './spsp.js'
export { type FulfillJson, type PrepareJson, type RejectJson, type ReplyJson } from '@ilp-farm/protocol'
export { type NewAccount, redeemTicket, signUp } from './onboarding.js'
export { solvePow } from './pow-solver.js'
export { verifyPow } from '@ilp-farm/protocol'
