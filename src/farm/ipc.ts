import type { FarmConfig } from '../config/schema.js'

/**
 * Messages between the supervisor and its workers (node:cluster IPC). The
 * config travels here, not in the environment, so its secrets never show in
 * /proc/<pid>/environ.
 */
export type SupervisorMessage =
  | { type: 'start'; config: FarmConfig; shard: number; redisUrl: string }
  | { type: 'shutdown' }
/** 'ready': the worker listens for its config (a message sent before that would be lost). */
export type WorkerMessage = { type: 'ready' } | { type: 'listening'; url: string; shard: number }
