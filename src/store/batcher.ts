/**
 * Collects the packet transitions (prepares, fulfills and rejects alike) that
 * a worker makes during one turn of the event loop and sends them as one
 * call. Under load a worker accepts and settles several packets per turn; one
 * FCALL for all of them costs Redis and the client a fraction of one call
 * each, and every packet still goes through exactly one script call of its
 * own, in the order the calls were made. At low load a batch is a single
 * packet, sent as soon as the current turn's I/O is handled (setImmediate).
 */
export type BatchSender<T> = (items: ReadonlyArray<T>) => Promise<unknown[]>

interface Pending<T> {
  item: T
  resolve(value: string): void
  reject(err: Error): void
}

export class CallBatcher<T> {
  private pending: Array<Pending<T>> = []
  private scheduled = false

  constructor(
    private readonly send: BatchSender<T>,
    private readonly maxBatch = 64,
  ) {}

  /** Resolves with this item's own result; rejects if the call failed or this item's result is an error. */
  call(item: T): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      this.pending.push({ item, resolve, reject })
      if (this.pending.length >= this.maxBatch) this.flush()
      else if (!this.scheduled) {
        this.scheduled = true
        setImmediate(this.flushNow)
      }
    })
  }

  private readonly flushNow = (): void => this.flush()

  private flush(): void {
    this.scheduled = false
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
