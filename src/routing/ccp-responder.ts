/**
 * The inbound side of route announcements (CCP), on every worker: a peer's
 * `peer.route.control` is stored for the leader's broadcaster, a peer's
 * `peer.route.update` is written into the shared routing table. Both answer
 * with the peer-protocol fulfillment (`packet/steps/ccp.ts` checks who may
 * send which before calling here).
 */
import type { IlpPrepare } from 'ilp-packet'
import { type CcpRoute, extractCcpRouteControlRequest, extractCcpRouteUpdateRequest, Mode, serializeCcpResponse } from 'ilp-protocol-ccp'
import type { Logger } from 'pino'
import type { AccountConfig, FarmConfig } from '../config/schema.js'
import { IlpRejection } from '../packet/reject.js'
import type { RedisClient } from '../store/redis.js'
import { isValidIlpAddress, isValidRoutePrefix } from '../util/address.js'
import { CcpStore, type LearnedRoute } from './ccp-store.js'

export interface CcpResponderOptions {
  config: FarmConfig
  redis: RedisClient
  log: Logger
}

export class CcpResponder {
  private readonly store: CcpStore
  private readonly ownAddress: string
  private readonly log: Logger

  constructor(opts: CcpResponderOptions) {
    this.store = new CcpStore(opts.redis, opts.config.redis.keyPrefix)
    this.ownAddress = opts.config.ilpAddress
    this.log = opts.log
  }

  /** `peer.route.control` from an account with sendRoutes: stored for the leader, answered with the peer-protocol fulfillment. */
  async handleControl(from: AccountConfig, prepare: IlpPrepare): Promise<Buffer> {
    let req
    try {
      req = extractCcpRouteControlRequest(prepare)
    } catch (err) {
      throw new IlpRejection('F01', `invalid route control: ${(err as Error).message}`)
    }
    if (req.mode !== Mode.MODE_IDLE && req.mode !== Mode.MODE_SYNC) throw new IlpRejection('F01', `invalid route control mode ${String(req.mode)}`)
    try {
      await this.store.recordControl(from.id, { mode: req.mode, tableId: req.lastKnownRoutingTableId, epoch: req.lastKnownEpoch })
    } catch {
      throw new IlpRejection('T00', 'cannot store the route control now')
    }
    this.log.debug({ account: from.id, mode: req.mode, epoch: req.lastKnownEpoch }, 'route control received')
    return serializeCcpResponse()
  }

  /** `peer.route.update` from an account with receiveRoutes: learned routes into the shared table. */
  async handleUpdate(from: AccountConfig, prepare: IlpPrepare): Promise<Buffer> {
    let req
    try {
      req = extractCcpRouteUpdateRequest(prepare)
    } catch (err) {
      throw new IlpRejection('F01', `invalid route update: ${(err as Error).message}`)
    }
    const routes = this.acceptableRoutes(req.newRoutes)
    const withdrawn = req.withdrawnRoutes.filter((p) => isValidRoutePrefix(p))
    let outcome
    try {
      outcome = await this.store.applyUpdate(
        from.id,
        {
          tableId: req.routingTableId,
          fromEpoch: req.fromEpochIndex,
          toEpoch: req.toEpochIndex,
          holdDownMs: req.holdDownTime,
          routes,
          withdrawn,
        },
        Date.now(),
      )
    } catch {
      throw new IlpRejection('T00', 'cannot store the route update now')
    }
    this.log.debug(
      { account: from.id, from: req.fromEpochIndex, to: req.toEpochIndex, routes: routes.length, dropped: req.newRoutes.length - routes.length, withdrawn: withdrawn.length, ...outcome },
      'route update received',
    )
    return serializeCcpResponse()
  }

  /** Routes the farm takes from a peer: a valid address below a scheme, not ours or under ours, not through us (loop). */
  acceptableRoutes(routes: readonly CcpRoute[]): LearnedRoute[] {
    const own = this.ownAddress
    const out: LearnedRoute[] = []
    for (const r of routes) {
      if (!isValidIlpAddress(r.prefix) || r.prefix.startsWith('peer.') || r.prefix.startsWith('self.')) continue
      if (r.prefix === own || r.prefix.startsWith(`${own}.`)) continue // our own prefix: we know it better
      if (r.path.includes(own)) continue // the route goes through us: a loop
      out.push({ prefix: r.prefix, path: [...r.path], auth: (r.auth.length === 32 ? r.auth : Buffer.alloc(32)).toString('hex') })
    }
    return out
  }
}
