import { searchPow } from './pow.js'

/** Piscina task: one slice of the nonce space (see pow-solver.ts). */
export default function search(task: { challenge: string; difficulty: number; start: number; step: number; limit: number }): string | null {
  return searchPow(task.challenge, task.difficulty, task.start, task.step, task.limit) ?? null
}
