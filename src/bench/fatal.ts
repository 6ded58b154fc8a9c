/**
 * The bench's last resort: when its own output goes away (a closed pipe:
 * `npm run bench | head`, a reader that died) or an error nothing caught
 * escapes, it releases what it started, then exits 1. The process would
 * otherwise die there, and its farms, each in its own process group, would
 * run on without it.
 */
export function cleanUpOnFatalError(cleanup: () => Promise<unknown>): void {
  let fatal = false
  const onFatal = (err: unknown): void => {
    if (fatal) return
    fatal = true
    // a broken pipe is the reader gone: nothing more can be said on it
    if ((err as NodeJS.ErrnoException | null)?.code !== 'EPIPE') {
      try {
        process.stderr.write(`bench: ${(err as Error | null)?.stack ?? String(err)}\n`)
      } catch {
        // stderr is gone too
      }
    }
    void cleanup()
      .catch(() => undefined)
      .finally(() => process.exit(1))
  }
  process.stdout.on('error', onFatal)
  process.stderr.on('error', onFatal)
  process.on('uncaughtException', onFatal)
}
