import type { ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { DashboardSessions } from './dashboard-sessions.js'
import type { DashboardSnapshot } from './dashboard-snapshot.js'

interface Viewer {
  readonly res: ServerResponse
  readonly sessionId: string
}

/** A viewer that has not read this much of what was sent is dropped (its browser reconnects and starts afresh). */
const MAX_BUFFERED_BYTES = 1_000_000

export interface DashboardFeedOptions {
  build: () => Promise<DashboardSnapshot>
  sessions: DashboardSessions
  log: Logger
  intervalMs?: number
}

/**
 * The dashboard's server-sent events on one worker: while anyone watches,
 * one snapshot a second is built (once, whatever the number of viewers) and
 * sent to each viewer whose session is still valid; a viewer whose session
 * has ended (logout, expiry) gets a `logout` event and is disconnected.
 */
export class DashboardFeed {
  private readonly viewers = new Set<Viewer>()
  private timer: NodeJS.Timeout | undefined
  private ticking = false
  private closed = false

  constructor(private readonly opts: DashboardFeedOptions) {}

  /** Takes over a response as an event stream; the first snapshot follows at once. */
  add(res: ServerResponse, sessionId: string): void {
    if (this.closed) {
      res.writeHead(503).end()
      return
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      // a proxy (nginx) must pass the events on as they come
      'x-accel-buffering': 'no',
    })
    // the browser reconnects by itself after a dropped stream: ask it to wait a second
    res.write('retry: 1000\n\n')
    const viewer: Viewer = { res, sessionId }
    this.viewers.add(viewer)
    res.on('close', () => this.remove(viewer))
    this.timer ??= setInterval(() => void this.tick(), this.opts.intervalMs ?? 1000)
    void this.tick()
  }

  /** Ends every stream (the worker is closing: its HTTP server waits for open responses). */
  close(): void {
    this.closed = true
    for (const viewer of this.viewers) viewer.res.end()
    this.viewers.clear()
    this.stopTimer()
  }

  private remove(viewer: Viewer): void {
    this.viewers.delete(viewer)
    if (this.viewers.size === 0) this.stopTimer()
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }

  /** One update for everybody; skipped while the previous one is still being built. */
  private async tick(): Promise<void> {
    if (this.ticking || this.viewers.size === 0) return
    this.ticking = true
    try {
      const viewers = [...this.viewers]
      const [snapshot, valid] = await Promise.all([this.opts.build(), Promise.all(viewers.map((v) => this.opts.sessions.valid(v.sessionId)))])
      const data = `event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`
      viewers.forEach((viewer, i) => this.send(viewer, valid[i] ? data : 'event: logout\ndata: {}\n\n', !valid[i]))
    } catch (err) {
      this.opts.log.warn({ err }, 'dashboard: could not build an update')
      // the page says its numbers are stale rather than silently freezing
      for (const viewer of this.viewers) this.send(viewer, 'event: problem\ndata: {"error":"the farm\'s state could not be read (Redis)"}\n\n', false)
    } finally {
      this.ticking = false
    }
  }

  private send(viewer: Viewer, data: string, last: boolean): void {
    if (!this.viewers.has(viewer)) return
    if (viewer.res.writableLength > MAX_BUFFERED_BYTES || last) {
      if (last) viewer.res.write(data)
      viewer.res.end()
      this.remove(viewer)
      return
    }
    viewer.res.write(data)
  }
}
