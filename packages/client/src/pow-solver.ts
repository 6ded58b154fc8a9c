import { createRequire } from 'node:module'
import { availableParallelism } from 'node:os'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'

/**
 * Solves a sign-up challenge off the main thread: `threads` worker threads
 * search interleaved nonces (thread i tries i, i + threads, ...) until one
 * finds a nonce; the others are then stopped. The caller's event loop stays
 * free (a client keeps serving its RPC endpoint meanwhile).
 */
export async function solvePow(challenge: string, difficulty: number, opts: { threads?: number; signal?: AbortSignal } = {}): Promise<string> {
  const threads = Math.max(1, opts.threads ?? Math.max(1, availableParallelism() - 1))
  if (opts.signal?.aborted) throw new Error('proof of work aborted')
  const workers = Array.from({ length: threads }, (_, i) => startThread({ challenge, difficulty, start: i, step: threads }))
  try {
    return await new Promise<string>((resolve, reject) => {
      opts.signal?.addEventListener('abort', () => reject(new Error('proof of work aborted')), { once: true })
      for (const worker of workers) {
        worker.once('message', (nonce: string) => resolve(nonce))
        worker.once('error', reject)
        worker.once('exit', (code) => reject(new Error(`a proof-of-work thread exited (code ${code}) without a nonce`)))
      }
    })
  } finally {
    await Promise.all(workers.map((w) => w.terminate()))
  }
}

/**
 * One thread running pow-worker. Tests run the TypeScript source: the thread
 * then registers tsx before it loads the worker (on Node 20 a worker's own
 * `--import tsx` does not apply to its entry file) and reads the workspace
 * packages as source, as the tests do.
 */
function startThread(workerData: { challenge: string; difficulty: number; start: number; step: number }): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./pow-worker.js', import.meta.url), { workerData })
  // Node's own resolver where there is one (vitest's modules have none): the ESM entry of tsx's API.
  const tsx = typeof import.meta.resolve === 'function' ? import.meta.resolve('tsx/esm/api') : pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api')).href
  const worker = new URL('./pow-worker.ts', import.meta.url).href
  const bootstrap = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(worker)}) })`
  return new Worker(bootstrap, { eval: true, workerData, execArgv: ['--conditions=ilp-farm-source'] })
}
