import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { Piscina } from 'piscina'

/** Nonces one task tries before the pool checks whether another thread has found one. */
const SLICE = 50_000

/**
 * Solves a sign-up challenge off the main thread (piscina): the threads take
 * slices of the nonce space in turn until one finds a nonce. The caller's event loop stays free (a client keeps serving its
 * RPC endpoint meanwhile).
 */
export async function solvePow(challenge: string, difficulty: number, opts: { threads?: number; signal?: AbortSignal } = {}): Promise<string> {
  const threads = Math.max(1, opts.threads ?? Math.max(1, availableParallelism() - 1))
  const fromSource = import.meta.url.endsWith('.ts') // tests run the TypeScript source: the worker needs tsx
  const pool = new Piscina({
    filename: fileURLToPath(new URL(fromSource ? './pow-worker.ts' : './pow-worker.js', import.meta.url)),
    minThreads: threads,
    maxThreads: threads,
    ...(fromSource ? { execArgv: ['--import', 'tsx'] } : {}),
  })
  try {
    let found: string | undefined
    let nextSlice = 0
    const lane = async (): Promise<void> => {
      while (found === undefined) {
        if (opts.signal?.aborted) throw new Error('proof of work aborted')
        const start = nextSlice++ * SLICE
        const nonce = (await pool.run({ challenge, difficulty, start, step: 1, limit: SLICE })) as string | null
        if (nonce !== null && found === undefined) found = nonce
      }
    }
    await Promise.all(Array.from({ length: threads }, () => lane()))
    return found!
  } finally {
    await pool.destroy()
  }
}
