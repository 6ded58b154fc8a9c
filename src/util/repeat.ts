/**
 * Runs `task` every `intervalMs`, never two at once (the next run is timed
 * from the end of the previous one). Its timers do not keep the process alive.
 */
export class Repeater {
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined
  private stopped = true

  constructor(
    private readonly intervalMs: number,
    private readonly task: () => Promise<void>,
  ) {}

  /** Runs the task now, then on the interval. */
  start(): Promise<void> {
    if (!this.stopped) return this.running ?? Promise.resolve()
    this.stopped = false
    // A run from before stop() still going: its end schedules the next one (never two chains at once).
    if (this.running) return this.running
    return this.run()
  }

  private run(): Promise<void> {
    this.timer = undefined
    this.running = this.task()
      .catch(() => undefined)
      .finally(() => {
        this.running = undefined
        if (this.stopped) return
        this.timer = setTimeout(() => void this.run(), this.intervalMs)
        this.timer.unref()
      })
    return this.running
  }

  /** No more runs; resolves once a run in progress has finished. */
  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    await this.running
  }
}
