// The packet core's real parts on a real Redis, without a worker or an HTTP
// server: the ledger, the accounts, the address mapper, the rates, the
// Request-Id guard and the resolver, built from a config as the worker builds
// them, and small factories for the packets the steps take.
import { type IlpPrepare, serializeIlpPrepare } from 'ilp-packet'
import { Redis } from 'ioredis'
import { type Logger, pino } from 'pino'
import { AccountRegistry } from '../../../src/accounts/registry.js'
import { parseConfig } from '../../../src/config/load.js'
import { type AccountConfig, type AccountConfigInput, accountSchema, type FarmConfig, type FarmConfigInput } from '../../../src/config/schema.js'
import type { PacketContext, RoutedPacket } from '../../../src/packet/ports.js'
import { Resolver } from '../../../src/packet/resolver.js'
import { outgoingExpiry } from '../../../src/packet/steps/expiry.js'
import { outgoingAmount, route } from '../../../src/packet/steps/route.js'
import { Rates } from '../../../src/rates/rates.js'
import { AddressMapper } from '../../../src/routing/address-mapper.js'
import { Ledger } from '../../../src/store/ledger.js'
import { RequestIds } from '../../../src/store/request-ids.js'

/** An account's config as the steps get it: a child with USD at scale 6 unless `fields` say otherwise. */
export function accountInput(id: string, fields: Partial<AccountConfigInput> = {}): AccountConfigInput {
  return { id, relation: 'child', assetCode: 'USD', assetScale: 6, incoming: { token: `${id}-token-for-tests` }, ...fields }
}

export function accountOf(id: string, fields: Partial<AccountConfigInput> = {}): AccountConfig {
  return accountSchema.parse(accountInput(id, fields))
}

export interface TestCore {
  readonly config: FarmConfig
  readonly redis: Redis
  readonly ledger: Ledger
  readonly registry: AccountRegistry
  readonly routes: AddressMapper
  readonly rates: Rates
  readonly resolver: Resolver
  readonly requestIds: RequestIds
  readonly ilpAddress: string
  readonly shard: number
  readonly minMessageWindowMs: number
  readonly maxHoldTimeMs: number
  readonly log: Logger
  /** An account of the config, as the steps get it. */
  account(id: string): AccountConfig
  close(): Promise<void>
}

/** The parts of one farm (its own key prefix) on the Redis at redisUrl. */
export async function startCore(redisUrl: string, accounts: AccountConfigInput[], extra: Partial<FarmConfigInput> = {}): Promise<TestCore> {
  const config = parseConfig(
    { ilpAddress: 'test.farm', admin: { token: 'admin-token-for-tests' }, redis: { keyPrefix: `s${Math.random().toString(36).slice(2, 8)}:` }, ...extra, accounts },
    'test',
    {},
  )
  const log = pino({ level: 'silent' })
  const redis = new Redis(redisUrl)
  const ledger = new Ledger(redis, config.redis.keyPrefix)
  await ledger.load()
  const registry = await AccountRegistry.start({ redis, redisTarget: redisUrl, keys: ledger.keys, configAccounts: config.accounts, log })
  const routes = await AddressMapper.start({ redis, redisTarget: redisUrl, config, accounts: registry, ledger, log })
  const resolver = new Resolver(ledger, log)
  return {
    config,
    redis,
    ledger,
    registry,
    routes,
    rates: new Rates(config),
    resolver,
    requestIds: new RequestIds(redis, ledger.keys, { maxHoldTimeMs: config.maxHoldTimeMs, maxPerAccount: config.async.maxRequestIdsPerAccount }),
    ilpAddress: config.ilpAddress,
    shard: 0,
    minMessageWindowMs: config.minMessageWindowMs,
    maxHoldTimeMs: config.maxHoldTimeMs,
    log,
    account(id) {
      const found = config.accounts.find((a) => a.id === id)
      if (found === undefined) throw new Error(`no account ${id} in the config`)
      return found
    },
    async close() {
      resolver.close()
      await routes.close()
      await registry.close()
      redis.disconnect()
    },
  }
}

/** A packet as it arrives from `from`: its bytes are ilp-packet's serialization of `prepare`. */
export function arrived(from: AccountConfig, prepare: IlpPrepare, packetId = `p-${Math.random().toString(36).slice(2)}`): PacketContext {
  return { from, raw: serializeIlpPrepare(prepare), prepare, packetId }
}

/** A packet routed by the core's own route, amount and expiry steps, as the pipeline routes it. */
export async function routed(core: TestCore, ctx: PacketContext): Promise<RoutedPacket> {
  const { hop, candidate } = await route(ctx, core)
  return {
    ...ctx,
    nextHop: hop.account,
    nextHopRpcUrl: hop.rpcUrl,
    candidate,
    outAmount: outgoingAmount(ctx, hop.account, core),
    outExpiresAt: outgoingExpiry(ctx.prepare.expiresAt, Date.now(), core),
  }
}
