import { DataAndMoneyStream } from 'ilp-protocol-stream'

/**
 * ilp-protocol-stream 2.7.1 (the latest release) does not run on Node >= 18:
 * DataAndMoneyStream's constructor assigns `this.closed = false`, but since
 * Node 18 `closed` is a getter-only property of Readable, so creating any
 * stream throws "Cannot set property closed of #<Readable> which has only a
 * getter" (interledgerjs/interledgerjs#284). Upstream fixed it in #423 by
 * giving DataAndMoneyStream its own `closed` accessor, released only in the
 * 2.7.2-alpha prereleases. This does the same: a plain read/write flag on the
 * subclass prototype, shadowing Readable's getter (Node's stream internals
 * use _readableState.closed, not the property). Idempotent.
 */
export function fixStreamClosedProperty(): void {
  const proto: object = DataAndMoneyStream.prototype
  if (Object.prototype.hasOwnProperty.call(proto, 'closed')) return
  const flags = new WeakMap<object, boolean>()
  Object.defineProperty(proto, 'closed', {
    configurable: true,
    get(this: object): boolean {
      return flags.get(this) ?? false
    },
    set(this: object, value: boolean) {
      flags.set(this, value)
    },
  })
}

fixStreamClosedProperty()
