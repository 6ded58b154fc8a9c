import { randomUUID } from 'node:crypto'
import { isPaymentError, quote } from '@interledger/pay'
import { BigNumber } from 'bignumber.js'
import { deserializeIlpReject, Type } from 'ilp-packet'
import type { Logger } from 'pino'
import type { AccountConfig } from '../config/schema.js'
import type { PaymentEntry, PaymentHistory } from './history.js'
import type { SpspClient, SpspConnection } from './spsp-client.js'

/** Sends one ILP Prepare from an account through the farm's own packet path; resolves with the reply's bytes. */
export type SendFromAccount = (account: AccountConfig, prepare: Buffer) => Promise<Buffer>

/**
 * The plugin @interledger/pay sends through: the account's own packets, into
 * the farm's packet path in this process, as if they had come over
 * ILP-over-HTTP. It receives nothing: a STREAM receiver's answers come in the
 * replies.
 */
class AccountPlugin {
  private connected = false
  /** The last reject that was not the receiver's own answer (F99): why packets did not get through. */
  lastReject: string | undefined
  constructor(
    private readonly account: AccountConfig,
    private readonly send: SendFromAccount,
  ) {}
  connect(): Promise<void> {
    this.connected = true
    return Promise.resolve()
  }
  disconnect(): Promise<void> {
    this.connected = false
    return Promise.resolve()
  }
  isConnected(): boolean {
    return this.connected
  }
  async sendData(data: Buffer): Promise<Buffer> {
    const reply = await this.send(this.account, data)
    if (reply[0] === Type.TYPE_ILP_REJECT) {
      const reject = deserializeIlpReject(reply)
      if (reject.code !== 'F99') this.lastReject = `${reject.code} from ${reject.triggeredBy || 'the farm'}: ${reject.message}`
    }
    return reply
  }
  registerDataHandler(): void {}
  deregisterDataHandler(): void {}
}

/** The farm's reject behind a sender's error (STREAM's own names none): its first cause to the user. */
function because(plugin: AccountPlugin): string {
  return plugin.lastReject === undefined ? '' : ` (last reject: ${plugin.lastReject})`
}

export interface PayRequest {
  /** `$host/path`, or an SPSP URL. */
  paymentPointer: string
  /** In the account's asset and scale, an integer string > 0. */
  sourceAmount: string
}

export interface PayerOptions {
  send: SendFromAccount
  history: PaymentHistory
  spsp: SpspClient
  /** Asset code → price in a common unit (config rates.prices): the sender's minimum exchange rate. Never fetched. */
  prices: Record<string, number>
  /** Slippage the sender accepts below those prices (default 0.01); the farm's own spread counts against it. */
  slippage?: number
  log: Logger
}

/**
 * Pays from an account with the STREAM sender Rafiki uses (@interledger/pay):
 * the account's packets go through the farm's packet path like any other, so
 * its balance, limits and routes apply. The payment's entry in the account's
 * history is written when it starts and when it ends, so any worker answers
 * its status; it runs in this worker, and a worker that dies leaves it
 * `running` past its `deadlineAt` (shown as failed: the money of each
 * packet settled exactly, as every packet's does).
 */
export class Payer {
  private readonly running = new Set<Promise<unknown>>()

  constructor(private readonly opts: PayerOptions) {}

  /**
   * Starts the payment once its receiver's SPSP server has answered (a
   * pointer that cannot be used throws SpspError, and nothing is recorded):
   * its first entry once it is written; `done` when it ends (never rejects).
   */
  async start(account: AccountConfig, req: PayRequest, timeoutMs: number): Promise<{ entry: PaymentEntry; done: Promise<PaymentEntry> }> {
    const receiver = await this.opts.spsp.query(req.paymentPointer)
    const startedAt = new Date()
    const entry: PaymentEntry = {
      id: `out-${randomUUID()}`,
      direction: 'outgoing',
      state: 'running',
      amount: '0',
      delivered: '0',
      counterpart: req.paymentPointer,
      assetCode: account.assetCode,
      assetScale: account.assetScale,
      startedAt: startedAt.toISOString(),
      deadlineAt: new Date(startedAt.getTime() + timeoutMs).toISOString(),
    }
    await this.opts.history.put(account.id, entry)
    const done = this.run(account, receiver, req, entry, timeoutMs)
    this.running.add(done)
    void done.finally(() => this.running.delete(done))
    return { entry, done }
  }

  private async run(account: AccountConfig, receiver: SpspConnection, req: PayRequest, entry: PaymentEntry, timeoutMs: number): Promise<PaymentEntry> {
    let ended: PaymentEntry
    try {
      ended = { ...entry, ...(await this.pay(account, receiver, req, timeoutMs)) }
    } catch (err) {
      ended = { ...entry, state: 'failed', error: err instanceof Error ? err.message : String(err) }
    }
    ended.finishedAt = new Date().toISOString()
    delete ended.deadlineAt
    await this.opts.history.put(account.id, ended).catch((err: unknown) => this.opts.log.warn({ err, payment: entry.id }, 'could not record the end of a payment'))
    return ended
  }

  private async pay(account: AccountConfig, { destinationAccount, sharedSecret }: SpspConnection, req: PayRequest, timeoutMs: number): Promise<Partial<PaymentEntry>> {
    const plugin = new AccountPlugin(account, this.opts.send)
    const scale = (units: BigNumber, assetScale: number) => units.shiftedBy(assetScale).integerValue(BigNumber.ROUND_DOWN).toFixed(0)
    let q: Awaited<ReturnType<typeof quote>>
    try {
      q = await quote({
        plugin,
        destinationAddress: destinationAccount,
        sharedSecret,
        amountToSend: new BigNumber(req.sourceAmount).shiftedBy(-account.assetScale).toFixed(),
        prices: this.opts.prices,
        slippage: this.opts.slippage ?? 0.01,
      })
    } catch (err) {
      throw new Error(`the payment could not start: ${isPaymentError(err) ? err : String(err)}${because(plugin)}`)
    }
    const destination = { destinationAssetCode: q.destinationAccount.assetCode, destinationAssetScale: q.destinationAccount.assetScale }
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        void q.cancel()
        reject(new Error(`the payment did not finish within ${timeoutMs} ms`))
      }, timeoutMs)
    })
    try {
      const receipt = await Promise.race([q.pay(), timedOut])
      // receipt amounts are in normal units: back to the integers the farm keeps
      const amounts = {
        amount: scale(new BigNumber(receipt.amountSent.toString()), account.assetScale),
        delivered: scale(new BigNumber(receipt.amountDelivered.toString()), q.destinationAccount.assetScale),
      }
      return receipt.error === undefined
        ? { state: 'completed', ...destination, ...amounts }
        : { state: 'failed', ...destination, ...amounts, error: `the payment stopped: ${receipt.error}${because(plugin)}` }
    } finally {
      clearTimeout(timer)
    }
  }

  /** Waits for the payments this worker runs (close). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.running])
  }
}
