import { configSchema } from '../config/schema.js'
import { HostIdInUseError } from './host-check.js'
import type { SupervisorMessage, WorkerMessage } from './ipc.js'
import { createLogger, createWorker, type Worker } from './worker.js'

/** Entry point of a worker process forked by the supervisor: it waits for its config over IPC. */
let worker: Worker | undefined
let closing = false

async function start(message: Extract<SupervisorMessage, { type: 'start' }>): Promise<void> {
  const config = configSchema.parse(message.config)
  const log = createLogger(config, message.shard)
  worker = await createWorker({ config, shard: message.shard, redisTarget: message.redis, logger: log })
  const url = await worker.listen()
  process.send?.({ type: 'listening', url, shard: message.shard } satisfies WorkerMessage)
}

async function shutdown(): Promise<void> {
  if (closing) return
  closing = true
  await worker?.close().catch((err: unknown) => console.error('ilp-farm worker: error while closing:', err))
  process.exit(0)
}

process.on('message', (message: SupervisorMessage) => {
  if (message.type === 'shutdown') void shutdown()
  if (message.type === 'start' && !worker) {
    start(message).catch((err: unknown) => {
      // an operator's mistake needs its message, not a stack trace
      if (err instanceof HostIdInUseError) console.error(`ilp-farm worker ${message.shard}: ${err.message}`)
      else console.error('ilp-farm worker failed to start:', err)
      const failed: WorkerMessage = { type: 'failed', shard: message.shard, message: err instanceof Error ? err.message : String(err) }
      if (process.send) process.send(failed, undefined, undefined, () => process.exit(1))
      else process.exit(1)
    })
  }
})
process.on('SIGINT', () => void shutdown())
process.on('SIGTERM', () => void shutdown())
process.send?.({ type: 'ready' } satisfies WorkerMessage)
