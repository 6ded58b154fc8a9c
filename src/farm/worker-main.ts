import { configSchema } from '../config/schema.js'
import { type SupervisorMessage, WORKER_ENV, type WorkerMessage } from './ipc.js'
import { createLogger, createWorker } from './worker.js'

/** Entry point of a worker process forked by the supervisor. */
async function main(): Promise<void> {
  const config = configSchema.parse(JSON.parse(process.env[WORKER_ENV.config] ?? 'null'))
  const shard = Number(process.env[WORKER_ENV.shard])
  const redisUrl = process.env[WORKER_ENV.redisUrl]!
  const log = createLogger(config, shard)
  const worker = await createWorker({ config, shard, redisUrl, logger: log })
  const url = await worker.listen()
  process.send?.({ type: 'listening', url, shard } satisfies WorkerMessage)

  let closing = false
  const shutdown = async () => {
    if (closing) return
    closing = true
    await worker.close().catch((err: unknown) => log.error({ err }, 'error while closing'))
    process.exit(0)
  }
  process.on('message', (message: SupervisorMessage) => {
    if (message.type === 'shutdown') void shutdown()
  })
  process.on('SIGINT', () => void shutdown())
  process.on('SIGTERM', () => void shutdown())
}

main().catch((err: unknown) => {
  console.error('ilp-farm worker failed to start:', err)
  process.exit(1)
})
