import { deserializeIlpPacket, type IlpPacket, type IlpPrepare, serializeIlpPrepare } from 'ilp-packet'
import { type Logger, pino } from 'pino'
import { type Dispatcher, request } from 'undici'
import { parseConfig } from '../../src/config/load.js'
import type { AccountConfigInput, FarmConfig, FarmConfigInput } from '../../src/config/schema.js'
import { createWorker, type Worker } from '../../src/farm/worker.js'
import type { RedisTarget } from '../../src/store/redis.js'

export const FARM_ADDRESS = 'test.farm'
export const ADMIN_TOKEN = 'admin-token-for-tests'

export interface TestFarm {
  url: string
  config: FarmConfig
  worker: Worker
  close(): Promise<void>
}

export function account(id: string, fields: Partial<AccountConfigInput> = {}): AccountConfigInput {
  return {
    id,
    relation: 'child',
    assetCode: 'USD',
    assetScale: 6,
    incoming: { token: `${id}-token` },
    ...fields,
  }
}

/** A one-worker farm in this process, on a free port, against the given Redis. */
export async function startTestFarm(
  redisUrl: string | RedisTarget,
  accounts: AccountConfigInput[],
  extra: Partial<FarmConfigInput> = {},
  opts: { logger?: Logger; shard?: number } = {},
): Promise<TestFarm> {
  const config = parseConfig(
    {
      ilpAddress: FARM_ADDRESS,
      http: { host: '127.0.0.1', port: 0 },
      admin: { token: ADMIN_TOKEN },
      redis: { keyPrefix: `t${Math.random().toString(36).slice(2, 8)}:` },
      ...extra,
      accounts,
    },
    'test',
    {},
  )
  const worker = await createWorker({ config, redisTarget: redisUrl, shard: opts.shard ?? 0, logger: opts.logger ?? pino({ level: 'silent' }) })
  const url = await worker.listen()
  return { url, config, worker, close: () => worker.close() }
}

export interface IlpResponse {
  status: number
  body: Buffer
  packet?: IlpPacket
}

/** POSTs a prepare (or raw bytes) to /accounts/:id/ilp over a real socket. */
export async function sendIlp(
  farmUrl: string,
  accountId: string,
  packet: IlpPrepare | Buffer,
  opts: { token?: string | null; contentType?: string; headers?: Record<string, string>; dispatcher?: Dispatcher } = {},
): Promise<IlpResponse> {
  const body = Buffer.isBuffer(packet) ? packet : serializeIlpPrepare(packet)
  const headers: Record<string, string> = { 'content-type': opts.contentType ?? 'application/octet-stream', ...opts.headers }
  const token = opts.token === undefined ? `${accountId}-token` : opts.token
  if (token !== null) headers.authorization = `Bearer ${token}`
  const res = await request(`${farmUrl}/accounts/${accountId}/ilp`, { method: 'POST', headers, body, dispatcher: opts.dispatcher })
  const buf = Buffer.from(await res.body.arrayBuffer())
  let parsed: IlpPacket | undefined
  if (res.statusCode === 200) parsed = deserializeIlpPacket(buf)
  return { status: res.statusCode, body: buf, packet: parsed }
}

export async function adminGet<T = unknown>(farmUrl: string, path: string, token: string | null = ADMIN_TOKEN): Promise<{ status: number; json: T }> {
  const headers: Record<string, string> = {}
  if (token !== null) headers.authorization = `Bearer ${token}`
  const res = await request(`${farmUrl}${path}`, { headers })
  return { status: res.statusCode, json: (await res.body.json()) as T }
}

/** An admin API call with a JSON body (POST, PUT, DELETE); the JSON answer, or null for an empty body. */
export async function adminSend<T = unknown>(
  farmUrl: string,
  method: 'POST' | 'PUT' | 'DELETE',
  path: string,
  body?: unknown,
  opts: { token?: string | null; headers?: Record<string, string> } = {},
): Promise<{ status: number; json: T }> {
  const headers: Record<string, string> = { ...opts.headers }
  const token = opts.token === undefined ? ADMIN_TOKEN : opts.token
  if (token !== null) headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await request(`${farmUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.body.text()
  return { status: res.statusCode, json: (text === '' ? null : JSON.parse(text)) as T }
}

export async function balanceOf(farmUrl: string, id: string): Promise<string> {
  const { json } = await adminGet<{ balance: string }>(farmUrl, `/admin/accounts/${id}`)
  return json.balance
}

export function prepareTo(destination: string, amount: string, condition: Buffer, expiresInMs = 10_000): IlpPrepare {
  return { destination, amount, executionCondition: condition, expiresAt: new Date(Date.now() + expiresInMs), data: Buffer.from('hello') }
}
