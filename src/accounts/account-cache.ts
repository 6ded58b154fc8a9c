/**
 * A bounded least-recently-used map: a worker keeps the accounts it is using,
 * never all of them. A Map keeps insertion order, so a hit re-inserts the key
 * at the young end and an insert past the capacity drops the oldest.
 */
export class LruMap<K, V> {
  private readonly map = new Map<K, V>()

  constructor(
    readonly capacity: number,
    /** Called with each entry dropped to make room (not with deleted or replaced ones). */
    private readonly onEvict?: (key: K, value: V) => void,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer')
  }

  get size(): number {
    return this.map.size
  }

  has(key: K): boolean {
    return this.map.has(key)
  }

  /** The value, marked as just used; undefined when absent. */
  get(key: K): V | undefined {
    const value = this.map.get(key)
    if (value === undefined) return undefined
    this.map.delete(key)
    this.map.set(key, value)
    return value
  }

  set(key: K, value: V): void {
    this.map.delete(key)
    this.map.set(key, value)
    if (this.map.size > this.capacity) {
      const [oldestKey, oldestValue] = this.map.entries().next().value as [K, V]
      this.map.delete(oldestKey)
      this.onEvict?.(oldestKey, oldestValue)
    }
  }

  delete(key: K): boolean {
    return this.map.delete(key)
  }

  clear(): void {
    this.map.clear()
  }

  keys(): IterableIterator<K> {
    return this.map.keys()
  }

  values(): IterableIterator<V> {
    return this.map.values()
  }
}
