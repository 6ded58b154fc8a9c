/**
 * Collects the calls made to one Redis function during a turn of the event
 * loop and sends them as one call. Under load a worker accepts several packets
 * per turn; one FCALL for all of their prepares (or fulfills) costs Redis and
 * the client a fraction of one call each, and every packet still goes through
 * exactly one script call. At low load a batch is a single packet, sent as
 * soon as the current turn's I/O is handled (setImmediate).
 */
export type BatchSender = (items: ReadonlyArray<BatchItem>) => Promise<unknown[]>

export interface BatchItem {
  readonly keys: readonly string[]
  readonly args: readonly string[]
}

interface Pending extends BatchItem {
  resolve(value: string): void
  reject(err: Error): void
}

export class CallBatcher {
  private pending: Pending[] = []
  private scheduled = false

  constructor(
    private readonly send: BatchSender,
    private readonly maxBatch = 64,
  ) {}

  /** Resolves with this item's own result; rejects if the call failed or this item's result is an error. */
  call(keys: readonly string[], args: readonly string[]): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      this.pending.push({ keys, args, resolve, reject })
      if (this.pending.length >= this.maxBatch) this.flush()
      else if (!this.scheduled) {
        this.scheduled = true
        setImmediate(() => this.flush())
      }
    })
  }

  private flush(): void {
    this.scheduled = false
    const batch = this.pending
    if (batch.length === 0) return
    this.pending = []
    this.send(batch).then(
      (results) => {
        batch.forEach((item, i) => {
          const result = results[i]
          if (result instanceof Error) item.reject(result)
          else if (typeof result === 'string') item.resolve(result)
          else item.reject(new Error(`unexpected script result ${String(result)}`))
        })
      },
      (err: unknown) => {
        const error = err instanceof Error ? err : new Error(String(err))
        for (const item of batch) item.reject(error)
      },
    )
  }
}
