/**
 * What one worker counted since its last flush, as Redis hash fields of the
 * farm-wide metrics hash (see fields.ts) and the amounts to add to them:
 * counts with HINCRBY (exact integers), sums with HINCRBYFLOAT.
 */
export class Deltas {
  readonly counts = new Map<string, number>()
  readonly sums = new Map<string, number>()

  count(field: string, n: number): void {
    if (n !== 0) this.counts.set(field, (this.counts.get(field) ?? 0) + n)
  }

  sum(field: string, x: number): void {
    if (x !== 0) this.sums.set(field, (this.sums.get(field) ?? 0) + x)
  }

  /** Adds another batch into this one (a flush that did not reach Redis is sent again with the next). */
  merge(other: Deltas): void {
    for (const [field, n] of other.counts) this.count(field, n)
    for (const [field, x] of other.sums) this.sum(field, x)
  }

  get empty(): boolean {
    return this.counts.size === 0 && this.sums.size === 0
  }
}

/**
 * A histogram's counts since the last flush: one slot per bucket (not
 * cumulative) and the sum. Observing is a short scan and two additions.
 */
export class LocalHistogram {
  private readonly counts: Float64Array
  private total = 0

  /** `fieldPrefix`: the hash field of this series without its `le` (fields.ts). */
  constructor(
    private readonly bounds: readonly number[],
    private readonly fieldPrefix: string,
    private readonly sumField: string,
  ) {
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe(value: number): void {
    let i = 0
    while (i < this.bounds.length && value > this.bounds[i]!) i++
    this.counts[i]!++
    this.total += value
  }

  /** Moves the counts into `into` and starts again from zero. */
  drain(into: Deltas): void {
    for (let i = 0; i < this.counts.length; i++) {
      const n = this.counts[i]!
      if (n === 0) continue
      into.count(`${this.fieldPrefix}|${i < this.bounds.length ? String(this.bounds[i]) : '+Inf'}`, n)
      this.counts[i] = 0
    }
    into.sum(this.sumField, this.total)
    this.total = 0
  }
}
