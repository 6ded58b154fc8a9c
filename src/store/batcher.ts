/**
 * Collects the packet transitions (prepares, fulfills and rejects alike) that
 * a worker makes during one turn of the event loop, or a few, and sends them
 * as one call. Under load a worker accepts and settles several packets per
 * turn; one FCALL for all of them costs Redis and the client a fraction of
 * one call each, and every packet still goes through exactly one script call
 * of its own, in the order the calls were made. At low load a batch is a
 * single packet, sent as soon as the turns' I/O is handled (setImmediate).
 */
export type BatchSender<T> = (items: ReadonlyArray<T>) => Promise<unknown[]>

interface Pending<T> {
  item: T
  resolve(value: string): void
  reject(err: Error): void
}

export interface BatchOptions {
  /** The most calls in one batch: a full batch is sent at once (default 64). */
  maxBatch?: number
  /**
   * Turns of the event loop a batch collects calls over, the one it began in
   * first (default 1). More turns make fewer, larger calls, each sent a turn
   * later.
   */
  turns?: number
}

export class CallBatcher<T> {
  private pending: Array<Pending<T>> = []
  private scheduled = false
  /** Counts the batches begun: a turn scheduled for a batch that filled up and went meanwhile sees a newer one. */
  private generation = 0
  private readonly maxBatch: number
  private readonly turns: number

  constructor(
    private readonly send: BatchSender<T>,
    opts: BatchOptions = {},
  ) {
    this.maxBatch = opts.maxBatch ?? 64
    this.turns = opts.turns ?? 1
    if (!(Number.isInteger(this.turns) && this.turns >= 1)) throw new Error(`turns must be an integer of 1 or more, got ${this.turns}`)
  }

  /** Resolves with this item's own result; rejects if the call failed or this item's result is an error. */
  call(item: T): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      this.pending.push({ item, resolve, reject })
      if (this.pending.length >= this.maxBatch) this.flush()
      else if (!this.scheduled) this.schedule()
    })
  }

  private schedule(): void {
    this.scheduled = true
    const generation = this.generation
    let turns = this.turns
    const onTurn = (): void => {
      if (generation !== this.generation) return
      if (--turns > 0) setImmediate(onTurn)
      else this.flush()
    }
    setImmediate(onTurn)
  }

  private flush(): void {
    this.scheduled = false
    this.generation++
    const batch = this.pending
    if (batch.length === 0) return
    this.pending = []
    let sent: Promise<unknown[]>
    try {
      sent = this.send(batch.map((p) => p.item))
    } catch (err) {
      sent = Promise.reject(err)
    }
    sent.then(
      (results) => {
        for (let i = 0; i < batch.length; i++) {
          const item = batch[i]!
          const result = results[i]
          if (result instanceof Error) item.reject(result)
          else if (typeof result === 'string') item.resolve(result)
          else item.reject(new Error(`unexpected script result ${String(result)}`))
        }
      },
      (err: unknown) => {
        const error = err instanceof Error ? err : new Error(String(err))
        for (const item of batch) item.reject(error)
      },
    )
  }
}
