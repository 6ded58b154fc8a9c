import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { IlpReject } from 'ilp-packet'
import { type Connection, createConnection, createServer, type DataAndMoneyStream, type Server } from 'ilp-protocol-stream'
import { Agent, request } from 'undici'
import './stream-compat.js'
import { LocalEndpoint, SPSP_PATH } from './endpoint.js'
import { IncomingRouter, RpcPlugin, type RpcPluginOptions } from './plugin.js'
import { type AccountInfo, type Balance, FarmRpc } from './rpc.js'
import { resolveSpsp, type StreamDestination } from './spsp.js'
import { type OpenTunnel, openTunnel } from './tunnel.js'

export const DEFAULT_TUNNEL_HOST = 'https://localtunnel.me'

export interface FarmClientOptions {
  /** The farm's JSON-RPC URL, e.g. https://farm.example/rpc. */
  rpcUrl: string
  /** The account's token (`incoming.token` in the farm's config): the token is the account. */
  token: string
  /**
   * The tunnel that makes the local endpoint reachable for the farm: `host`
   * is the tunnel server (default https://localtunnel.me; a farm's operator
   * runs one with `ilp-farm tunnel-server`). `false`: no tunnel, the local
   * endpoint's own URL is registered (a farm on this host or network).
   */
  tunnel?: { host?: string; subdomain?: string } | false
  /**
   * Run the local endpoint and register it as the account's RPC URL. Default
   * true; needed to receive only. `false`: a client that only pays, and
   * never reads, sets or clears the account's RPC URL (a `receive` running
   * elsewhere for the same account stays registered). Payments never need
   * it: they do not tell the receiver the payer's address.
   */
  listen?: boolean
  /** Port of the local endpoint; default a free one. */
  localPort?: number
  /** Address of the local endpoint; default 127.0.0.1. */
  localHost?: string
  /** If the account has an `outgoing.token`, the farm sends it with every call: require it. */
  incomingToken?: string
  /** How often the public URL is probed while the tunnel is up. Default 10000. */
  probeIntervalMs?: number
  /** Failed probes in a row that count as a dropped tunnel. Default 2. */
  probeFailures?: number
  /** Delays between attempts to re-open a dropped tunnel: from min, doubling, up to max. Default 250 and 10000. */
  reconnectDelayMs?: { min?: number; max?: number }
  /** Longest wait for a tunnel to open and answer its first probe. Default 15000. */
  openTimeoutMs?: number
  /** On stop(), clear the RPC URL at the farm so it stops calling a URL nobody answers. Default true. */
  clearRpcUrlOnStop?: boolean
}

/** A destination with its shared secret (Buffer, or base64 as printed by `receive`), or an SPSP URL / payment pointer. */
export type PaymentTarget = { destinationAccount: string; sharedSecret: Buffer | string } | { spspUrl: string }

export interface PaymentProgress {
  /** Source units sent (fulfilled) so far. */
  sent: string
  /** Destination units the receiver reported so far. */
  delivered: string
  /** Source units to send in all. */
  total: string
}

export interface PayOptions {
  onProgress?: (progress: PaymentProgress) => void
  /** Fail if the whole amount has not gone through within this long. Default 60000. */
  timeoutMs?: number
  /** Accepted loss against the probed exchange rate (STREAM's slippage). Default 0.01. */
  slippage?: number
}

export interface PaymentResult {
  sent: string
  delivered: string
  sourceAccount: string
  destinationAccount: string
}

/** The Reject that says why a payment failed, as the farm (or whoever triggered it) wrote it. */
export interface PaymentReject {
  code: string
  triggeredBy: string
  message: string
}

/**
 * A payment that did not go through in full; `sent`/`delivered` say how far
 * it got. `reject` is the first Reject of the path (the farm's F02 "no
 * route", T01 "receiver offline", T04, ...), which STREAM's own message
 * ("no packets meeting the minimum exchange precision ...") hides; the
 * message ends with it.
 */
export class PaymentError extends Error {
  override readonly name = 'PaymentError'
  constructor(
    message: string,
    readonly sent: string,
    readonly delivered: string,
    readonly reject?: PaymentReject,
  ) {
    super(reject === undefined ? message : `${message} (first reject: ${reject.code} from ${reject.triggeredBy || 'the path'}: ${reject.message})`)
  }
}

/**
 * Keeps the Reject that best says why a payment failed: the first one, but
 * not a STREAM receiver's F99 (its answers to a working connection travel
 * as F99) and, over an F08, anything else (STREAM probes with amounts up to
 * 10^12 and expects F08 for those above the path's maximum).
 */
class RejectWitness {
  first: PaymentReject | undefined

  see(reject: IlpReject): void {
    if (reject.code === 'F99') return
    if (this.first !== undefined && (this.first.code !== 'F08' || reject.code === 'F08')) return
    this.first = { code: reject.code, triggeredBy: reject.triggeredBy, message: reject.message }
  }
}

export interface MoneyEvent {
  /** This packet's amount, in the account's units. */
  amount: string
  /** Everything this client received since start. */
  totalReceived: string
  /** Everything received on this STREAM connection. */
  connectionTotal: string
  /** The tag given to `receive()` for the address the sender used. */
  connectionTag: string | undefined
}

export interface ReceiveInfo extends StreamDestination {
  /** The same secret as base64, as `ilp-farm-client pay --secret` takes it. */
  sharedSecretBase64: string
}

export interface FarmClientEvents {
  'tunnel-open': [{ url: string }]
  'tunnel-closed': [{ url: string; reason: string }]
  registered: [{ url: string }]
  /** A failed attempt to (re)open the tunnel or register its URL; the client keeps trying. */
  'tunnel-error': [Error]
  money: [MoneyEvent]
}

const CLOSE_TIMEOUT_MS = 5_000

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
    function done() {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
  })
}

/** Resolves with the promise's value, or with `fallback()` after ms. */
async function within<T>(promise: Promise<T>, ms: number, fallback: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(fallback()), ms)))
  try {
    return await Promise.race([promise, late])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * A user of the farm behind NAT: it talks to the farm's JSON-RPC API, runs a
 * local endpoint for the prepares the farm delivers to it, keeps that
 * endpoint reachable through a LocalTunnel (re-opened and re-registered when
 * it drops), and pays and receives with STREAM over the JSON-RPC link.
 */
export class FarmClient extends EventEmitter<FarmClientEvents> {
  readonly rpc: FarmRpc
  private readonly http = new Agent({ keepAliveTimeout: 10_000 })
  private readonly endpoint: LocalEndpoint | undefined
  private info: AccountInfo | undefined
  private router: IncomingRouter | undefined
  private server: Server | undefined
  private serverStarting: Promise<Server> | undefined
  private tunnel: OpenTunnel | undefined
  /** The last tunnel's id and secret: a re-opened tunnel asks for the same id, which the server keeps for this secret. */
  private lastTunnel: { id: string; secret: string } | undefined
  private maintaining: Promise<void> | undefined
  private registered: string | undefined
  private received = 0n
  private readonly stopping = new AbortController()

  constructor(private readonly opts: FarmClientOptions) {
    super()
    this.rpc = new FarmRpc(opts.rpcUrl, opts.token)
    if (opts.listen !== false) {
      this.endpoint = new LocalEndpoint({
        host: opts.localHost,
        port: opts.localPort,
        bearerToken: opts.incomingToken,
        onPrepare: (prepare) => this.router!.handle(prepare),
        spsp: async () => (this.server ? this.server.generateAddressAndSecret() : undefined),
      })
    }
  }

  /** The account as the farm describes it (after start()). */
  get account(): AccountInfo {
    if (this.info === undefined) throw new Error('FarmClient: call start() first')
    return this.info
  }

  /** The account's ILP address: `<farm>.<account id>`. */
  get address(): string {
    const address = this.account.ilpAddress
    if (address === null) throw new Error(`FarmClient: account ${this.account.accountId} is a ${this.account.relation}; the client needs a child account`)
    return address
  }

  /** The URL registered as the account's RPC URL, while it is (undefined between a drop and the next registration). */
  get registeredUrl(): string | undefined {
    return this.registered
  }

  /** The public base URL (the tunnel's, or the local endpoint's without a tunnel), while there is one. */
  get publicUrl(): string | undefined {
    if (this.endpoint === undefined) return undefined
    return this.opts.tunnel === false ? this.endpoint.url : this.tunnel?.url
  }

  /** SPSP URL handing out STREAM addresses of this client, once receive() has been called. */
  get spspUrl(): string | undefined {
    const base = this.publicUrl
    return this.server && base !== undefined ? `${base}${SPSP_PATH}` : undefined
  }

  get totalReceived(): bigint {
    return this.received
  }

  /** Checks the token, starts the local endpoint, opens the tunnel and registers the RPC URL. */
  async start(): Promise<void> {
    this.info = await this.rpc.getAccountInfo()
    this.router = new IncomingRouter(this.address)
    if (this.endpoint === undefined) return
    // The farm would refuse every URL: say so now rather than after opening a tunnel for nothing.
    if (this.info.allowedUrlPrefixes?.length === 0) {
      throw new Error(
        `FarmClient: the farm allows account ${this.info.accountId} no RPC URL, so it cannot receive; the operator must allow ` +
          'its tunnel server (incoming.callbackUrls, or users.rpcUrlPrefixes for sign-up and ticket accounts); listen: false only sends',
      )
    }
    await this.endpoint.start()
    try {
      if (this.opts.tunnel === false) {
        await this.register(this.endpoint.url)
        return
      }
      this.tunnel = await this.openAndRegister()
    } catch (err) {
      await this.endpoint.close()
      throw err
    }
    this.maintaining = this.maintain()
  }

  /** Stops re-opening, closes the STREAM server, clears the RPC URL at the farm, closes the endpoint. */
  async stop(): Promise<void> {
    this.stopping.abort()
    this.tunnel?.close()
    // An attempt to register may still wait for the farm: not for long.
    await within(this.maintaining ?? Promise.resolve(), CLOSE_TIMEOUT_MS, () => undefined)
    this.tunnel?.close()
    const server = this.server
    this.server = undefined
    if (server) await within(server.close(), CLOSE_TIMEOUT_MS, () => undefined)
    if (this.registered !== undefined && this.opts.clearRpcUrlOnStop !== false) {
      await this.rpc.setRpcUrl(null).catch(() => undefined)
      this.registered = undefined
    }
    await this.endpoint?.close()
    await this.rpc.close()
    await this.http.close()
  }

  async balance(): Promise<Balance> {
    return this.rpc.getBalance()
  }

  private async register(baseUrl: string): Promise<void> {
    const url = `${baseUrl}${this.endpoint!.secretPath}`
    await this.rpc.setRpcUrl(url)
    this.registered = url
    this.emit('registered', { url })
  }

  /** One attempt: open a tunnel, check it reaches us, register it. Throws (tunnel closed) on failure. */
  private async openAndRegister(): Promise<OpenTunnel> {
    const tunnelOpts = this.opts.tunnel === false ? {} : (this.opts.tunnel ?? {})
    const openTimeoutMs = this.opts.openTimeoutMs ?? 15_000
    const tunnel = await openTunnel({
      host: (tunnelOpts.host ?? DEFAULT_TUNNEL_HOST).replace(/\/+$/, ''),
      subdomain: this.lastTunnel?.id ?? tunnelOpts.subdomain,
      ...(this.lastTunnel ? { secret: this.lastTunnel.secret } : {}),
      localPort: this.endpoint!.port,
      localHost: this.endpoint!.host,
      openTimeoutMs,
      probe: (url) => this.probe(url),
      probeIntervalMs: this.opts.probeIntervalMs ?? 10_000,
      probeFailures: this.opts.probeFailures ?? 2,
      signal: this.stopping.signal,
    })
    if (tunnel.secret !== undefined) this.lastTunnel = { id: tunnel.id, secret: tunnel.secret }
    try {
      await this.waitForProbe(tunnel.url, openTimeoutMs)
      this.emit('tunnel-open', { url: tunnel.url })
      await this.register(tunnel.url)
      return tunnel
    } catch (err) {
      tunnel.close()
      throw err
    }
  }

  /** Re-opens the tunnel whenever it drops, with backoff, until stop(). */
  private async maintain(): Promise<void> {
    const signal = this.stopping.signal
    while (!signal.aborted && this.tunnel) {
      const { url } = this.tunnel
      const reason = await this.tunnel.dropped
      if (signal.aborted) return
      this.registered = undefined
      this.tunnel = undefined
      this.emit('tunnel-closed', { url, reason })
      this.tunnel = await this.reopen(signal)
    }
  }

  private async reopen(signal: AbortSignal): Promise<OpenTunnel | undefined> {
    const min = this.opts.reconnectDelayMs?.min ?? 250
    const max = this.opts.reconnectDelayMs?.max ?? 10_000
    for (let delay = min; !signal.aborted; delay = Math.min(delay * 2, max)) {
      try {
        const tunnel = await this.openAndRegister()
        if (!signal.aborted) return tunnel
        tunnel.close()
        return undefined
      } catch (err) {
        if (!signal.aborted) this.emit('tunnel-error', err as Error)
        await sleep(delay, signal)
      }
    }
    return undefined
  }

  /** Whether `<tunnelUrl><secret path>` reaches this process: it must answer the HMAC of a fresh nonce. */
  private async probe(tunnelUrl: string): Promise<boolean> {
    const endpoint = this.endpoint!
    const nonce = randomBytes(16).toString('base64url')
    try {
      const res = await request(`${tunnelUrl}${endpoint.secretPath}?probe=${nonce}`, {
        dispatcher: this.http,
        signal: AbortSignal.timeout(5_000),
      })
      const text = await res.body.text()
      if (res.statusCode !== 200) return false
      return (JSON.parse(text) as { probe?: unknown }).probe === endpoint.probeAnswer(nonce)
    } catch {
      return false
    }
  }

  private async waitForProbe(tunnelUrl: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!(await this.probe(tunnelUrl))) {
      if (Date.now() > deadline || this.stopping.signal.aborted) throw new Error(`${tunnelUrl} does not reach the local endpoint`)
      await sleep(200, this.stopping.signal)
    }
  }

  /** A plugin for one STREAM endpoint of this account, answering ILDCP with `address`. */
  private newPlugin(address: string, extra: Pick<RpcPluginOptions, 'sendOnly' | 'onReject'> = {}): RpcPlugin {
    const { assetCode, assetScale, connectorAddress } = this.account
    return new RpcPlugin({ sender: this.rpc, ildcp: { response: { clientAddress: address, assetCode, assetScale }, serverAddress: connectorAddress }, ...extra })
  }

  /** Starts the STREAM server (once) and hands out a fresh destination address and shared secret. */
  async receive(connectionTag?: string): Promise<ReceiveInfo> {
    const server = await this.startServer()
    const { destinationAccount, sharedSecret } = server.generateAddressAndSecret(connectionTag)
    return { destinationAccount, sharedSecret, sharedSecretBase64: sharedSecret.toString('base64') }
  }

  /** Calls back with every amount that arrives; returns the function that stops it. */
  onMoney(callback: (event: MoneyEvent) => void): () => void {
    this.on('money', callback)
    return () => this.off('money', callback)
  }

  private startServer(): Promise<Server> {
    if (this.endpoint === undefined) throw new Error('FarmClient: receiving needs the local endpoint (listen: true)')
    this.serverStarting ??= (async () => {
      const plugin = this.newPlugin(this.address)
      this.router!.setDefault(plugin)
      const server = await createServer({ plugin })
      server.on('connection', (connection: Connection) => this.countMoney(connection))
      this.server = server
      return server
    })()
    return this.serverStarting
  }

  private countMoney(connection: Connection): void {
    // A sender's failure ends its connection only; without a listener an 'error' would throw.
    connection.on('error', () => undefined)
    connection.on('stream', (stream: DataAndMoneyStream) => {
      stream.on('error', () => undefined)
      stream.setReceiveMax(Infinity)
      stream.on('money', (amount: string) => {
        this.received += BigInt(amount)
        this.emit('money', {
          amount,
          totalReceived: this.received.toString(),
          connectionTotal: connection.totalReceived,
          connectionTag: connection.connectionTag,
        })
      })
    })
  }

  private async destinationOf(target: PaymentTarget): Promise<StreamDestination> {
    if ('spspUrl' in target) return resolveSpsp(target.spspUrl)
    const sharedSecret = typeof target.sharedSecret === 'string' ? Buffer.from(target.sharedSecret, 'base64') : target.sharedSecret
    if (sharedSecret.length !== 32) throw new Error('sharedSecret must be 32 bytes')
    return { destinationAccount: target.destinationAccount, sharedSecret }
  }

  /**
   * Pays `amount` (source units, the account's) with STREAM, send-only: the
   * receiver is never told the payer's address, so it sends nothing back
   * and the payment needs neither this client's endpoint nor the account's
   * RPC URL (which it leaves as it is). Each payment's source address is
   * still its own (`<address>.pay-<hex>`), as STREAM receipts and logs name it.
   */
  async pay(target: PaymentTarget, amount: bigint | string | number, opts: PayOptions = {}): Promise<PaymentResult> {
    const total = BigInt(amount).toString()
    const timeoutMs = opts.timeoutMs ?? 60_000
    const deadline = Date.now() + timeoutMs
    const { destinationAccount, sharedSecret } = await this.destinationOf(target)
    const segment = `pay-${randomBytes(6).toString('hex')}`
    const witness = new RejectWitness()
    const plugin = this.newPlugin(`${this.address}.${segment}`, { sendOnly: true, onReject: (reject) => witness.see(reject) })
    // STREAM has no timeout of its own for connecting (its rate probe retries Txx
    // rejects with growing delays): at the deadline the plugin disconnects, every
    // packet after that gets a final reject, and STREAM gives up at once.
    const timer = setTimeout(() => void plugin.disconnect(), timeoutMs)
    let connection: Connection | undefined
    try {
      try {
        connection = await createConnection({ plugin, destinationAccount, sharedSecret, slippage: opts.slippage })
      } catch (err) {
        throw new PaymentError(`could not connect to ${destinationAccount}: ${(err as Error).message}`, '0', '0', witness.first)
      }
      connection.on('error', () => undefined)
      return await this.sendTotal(connection, total, Math.max(deadline - Date.now(), 1), opts.onProgress, witness)
    } finally {
      clearTimeout(timer)
      if (connection) await this.closeConnection(connection)
    }
  }

  private async sendTotal(
    connection: Connection,
    total: string,
    timeoutMs: number,
    onProgress: ((p: PaymentProgress) => void) | undefined,
    witness: RejectWitness,
  ): Promise<PaymentResult> {
    const stream = connection.createStream()
    stream.on('error', () => undefined) // reported through sendTotal's rejection
    const progress = (): PaymentProgress => ({ sent: stream.totalSent, delivered: connection.totalDelivered, total })
    let last = ''
    const report = () => {
      const p = progress()
      const key = `${p.sent}/${p.delivered}`
      if (key === last) return
      last = key
      onProgress?.(p)
    }
    // STREAM emits 'outgoing_money' just before it adds the packet to totalDelivered: report after that.
    stream.on('outgoing_money', () => queueMicrotask(report))
    try {
      await stream.sendTotal(total, { timeout: timeoutMs })
    } catch (err) {
      const p = progress()
      throw new PaymentError((err as Error).message, p.sent, p.delivered, witness.first)
    }
    report()
    const done = progress()
    return { sent: done.sent, delivered: done.delivered, sourceAccount: connection.sourceAccount, destinationAccount: connection.destinationAccount ?? '' }
  }

  /** Ends the connection gracefully, or destroys it when the other side does not answer in time. */
  private async closeConnection(connection: Connection): Promise<void> {
    const ended = await within(
      connection.end().then(() => true),
      CLOSE_TIMEOUT_MS,
      () => false,
    ).catch(() => false)
    if (!ended) await within(connection.destroy(), CLOSE_TIMEOUT_MS, () => undefined).catch(() => undefined)
  }
}
