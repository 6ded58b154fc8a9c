/** Messages between the supervisor and its workers (node:cluster IPC). */
export type SupervisorMessage = { type: 'shutdown' }
export type WorkerMessage = { type: 'listening'; url: string; shard: number }

/** Environment a worker process is started with. */
export const WORKER_ENV = {
  config: 'ILP_FARM_WORKER_CONFIG',
  shard: 'ILP_FARM_WORKER_SHARD',
  redisUrl: 'ILP_FARM_WORKER_REDIS_URL',
} as const
