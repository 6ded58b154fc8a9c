import { parentPort, workerData } from 'node:worker_threads'
import { searchPow } from '@ilp-farm/protocol'

/** One thread of solvePow (pow-solver.ts): nonces start, start + step, ... until one works, posted once. */
const { challenge, difficulty, start, step } = workerData as { challenge: string; difficulty: number; start: number; step: number }
/** Nonces per searchPow call: the search is a loop of slices, as searchPow takes a limit. */
const SLICE = 50_000
for (let from = start; ; from += step * SLICE) {
  const nonce = searchPow(challenge, difficulty, from, step, SLICE)
  if (nonce !== undefined) {
    parentPort!.postMessage(nonce)
    break
  }
}
