import type { FarmConfig } from '../config/schema.js'
import type { RedisTarget } from '../store/redis.js'

/**
 * Messages between the supervisor and its workers (node:cluster IPC). The
 * config travels here, not in the environment, so its secrets never show in
 * /proc/<pid>/environ.
 */
export type SupervisorMessage =
  | { type: 'start'; config: FarmConfig; shard: number; redis: RedisTarget }
  | { type: 'shutdown' }
/**
 * 'ready': the worker listens for its config (a message sent before that would be lost).
 * 'failed': it could not start, and exits; `message` says why (the supervisor's own error repeats it).
 */
export type WorkerMessage = { type: 'ready' } | { type: 'listening'; url: string; shard: number } | { type: 'failed'; shard: number; message: string }
