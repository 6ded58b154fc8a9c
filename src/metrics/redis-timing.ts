import type { RedisClient } from '../store/redis.js'

/** What ioredis hands to sendCommand: enough of its Command for timing it. */
interface TimedCommand {
  readonly name: string
  readonly args: unknown[]
  readonly promise: Promise<unknown>
}

/** Redis' sendCommand(command, stream), or a Cluster's sendCommand(command, stream, node): the rest is passed on as is. */
type SendCommand = (command: TimedCommand, ...rest: unknown[]) => unknown

/**
 * The label of a command: its name, and for FCALL the function it runs
 * without the library's hash (`ilpfarm_<hash>_batch` → `fcall:batch`, see
 * src/store/scripts.ts), since those are the packet path's calls.
 */
function commandLabel(command: TimedCommand, cache: LabelCache): string {
  const fn = command.args[0]
  if (command.name === 'fcall' && typeof fn === 'string') {
    let label = cache.fcall.get(fn)
    if (label === undefined) cache.fcall.set(fn, (label = `fcall:${fn.slice(fn.lastIndexOf('_') + 1)}`))
    return label
  }
  // `redis.call('FUNCTION', …)` keeps the caller's case: lower-cased once per name, then cached
  let label = cache.names.get(command.name)
  if (label === undefined) cache.names.set(command.name, (label = command.name.toLowerCase()))
  return label
}

/** Labels already made, so that timing a call builds no string. */
interface LabelCache {
  readonly fcall: Map<string, string>
  readonly names: Map<string, string>
}

/**
 * Times every call made on one ioredis connection, from the moment the
 * client takes it (so auto-pipelining's wait for the end of the event-loop
 * turn counts, as it does for the packet) until its reply or error.
 * Done by wrapping the connection's sendCommand, which every command,
 * pipelined or not, passes through; the store code is not touched. Calls
 * sent while `skip()` is true are not timed. Returns a function that removes
 * the wrapper.
 *
 * A command ioredis passes through sendCommand twice (its offline queue,
 * or a resend after a reconnect) would be timed twice: the worker's
 * connection has neither once connected (no offline queue, no resending),
 * and a set to mark commands cost more than the timing itself.
 */
export function timeRedisCalls(redis: RedisClient, observe: (command: string, seconds: number) => void, skip: () => boolean = () => false): () => void {
  const target = redis as unknown as { sendCommand: SendCommand }
  const original = target.sendCommand
  const labels: LabelCache = { fcall: new Map(), names: new Map() }
  target.sendCommand = function timedSendCommand(this: unknown, command: TimedCommand, ...rest: unknown[]): unknown {
    if (!skip()) {
      const startedAt = performance.now()
      const done = () => observe(commandLabel(command, labels), (performance.now() - startedAt) / 1000)
      command.promise.then(done, done)
    }
    return original.call(this, command, ...rest)
  }
  return () => {
    target.sendCommand = original
  }
}
