/**
 * A bounded map that keeps what is in use: a worker holds the accounts (and
 * pools) it is using, never all of them. Two generations: entries are read
 * and written in the young one; one found only in the old generation moves
 * to the young one; when the young one is full it becomes the old one and
 * the old one is dropped. So a hit on a young entry costs one Map read (the
 * packet path does a few per packet), and what goes unused for a whole
 * generation goes. At most `capacity` entries are held.
 */
export class LruMap<K, V> {
  private young = new Map<K, V>()
  private old = new Map<K, V>()
  private readonly generation: number

  constructor(
    readonly capacity: number,
    /** Called with each entry dropped to make room (not with deleted or replaced ones). */
    private readonly onEvict?: (key: K, value: V) => void,
  ) {
    if (!Number.isInteger(capacity) || capacity < 2) throw new RangeError('capacity must be an integer of at least 2')
    this.generation = Math.floor(capacity / 2)
  }

  get size(): number {
    return this.young.size + this.old.size
  }

  has(key: K): boolean {
    return this.young.has(key) || this.old.has(key)
  }

  /** The value, kept as in use; undefined when absent. */
  get(key: K): V | undefined {
    const value = this.young.get(key)
    if (value !== undefined) return value
    const aging = this.old.get(key)
    if (aging === undefined) return undefined
    this.old.delete(key)
    this.addYoung(key, aging)
    return aging
  }

  set(key: K, value: V): void {
    if (this.young.has(key)) {
      this.young.set(key, value)
      return
    }
    this.old.delete(key)
    this.addYoung(key, value)
  }

  delete(key: K): boolean {
    return this.young.delete(key) || this.old.delete(key)
  }

  clear(): void {
    this.young.clear()
    this.old.clear()
  }

  *keys(): IterableIterator<K> {
    yield* this.young.keys()
    yield* this.old.keys()
  }

  *values(): IterableIterator<V> {
    yield* this.young.values()
    yield* this.old.values()
  }

  private addYoung(key: K, value: V): void {
    if (this.young.size >= this.generation) {
      const dropped = this.old
      this.old = this.young
      this.young = new Map()
      if (this.onEvict) for (const [k, v] of dropped) this.onEvict(k, v)
    }
    this.young.set(key, value)
  }
}
