/**
 * `ilp-farm accounts import FILE`: accounts from JSON Lines (one account object per line, as in the config
 * file's accounts[]) into POST /admin/accounts/import. The file is streamed a batch at a time and never held
 * whole; a couple of batches are in flight so the farm always has the next one. Each line's outcome is
 * reported by its line number, in file order.
 */
import { once } from 'node:events'
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import cliProgress from 'cli-progress'
import { type AdminClient, FarmError, JsonText } from '../admin-client.js'
import { type FarmContext, positionals, print, printError, printJson, stringOption, UsageError } from '../command.js'
import { duration, fields, plural } from '../format.js'
import type { ImportResult } from '../views.js'

export const IMPORT_OPTIONS = {
  update: { type: 'boolean' },
  'tokens-out': { type: 'string' },
} as const

/** The flags only `accounts import` takes. */
export const IMPORT_FLAGS = Object.keys(IMPORT_OPTIONS)

/** Lines per request: the round trip is small next to the farm's work on them, and far below its 10,000. */
const BATCH_LINES = 2_000
/** Characters per request, so long lines still keep a batch well inside the farm's 16 MiB body limit. */
const BATCH_CHARS = 4 * 1024 * 1024
/** Requests in flight: the farm works on one while the next is read, sent and parsed. */
const IN_FLIGHT = 2

/** One non-blank line of the file. */
interface Line {
  /** 1-based and counting blank lines: what an editor shows. */
  line: number
  /** The line as read, when it is JSON: sent to the farm as it is. */
  text?: string
  /** Its `id`, to name the first line of an id given twice in one batch. */
  id?: string
  /** Why it was not sent. */
  error?: string
}

interface Batch {
  /** 0, 1, 2... in file order. */
  seq: number
  lines: Line[]
  /** Lines with text: the accounts in the request. */
  sent: number
  chars: number
  /** Bytes of the file up to its last line: where the progress bar stands once it is answered. */
  endByte: number
}

type Answer = { results: ImportResult[] } | { error: FarmError }

/** A refused line, as `--json` lists it. */
export interface ImportFailure {
  line: number
  id?: string
  /** The farm's outcome (`invalid`, `exists`, `deleted`, `token-taken`, `conflict`), or `not-json` (not sent). */
  outcome: string
  error: string
  issues?: string[]
  /** The earlier line of the same batch with this id. */
  duplicateOf?: number
}

/** `accounts import --json`. */
export interface ImportSummary {
  file: string
  update: boolean
  /** Non-blank lines read. */
  lines: number
  created: number
  updated: number
  unchanged: number
  failed: number
  elapsedMs: number
  /** Lines the farm answered, per second. */
  accountsPerSecond: number
  /** Tokens the farm made for lines without one, and the file they went to (null: not saved). */
  generatedTokens: number
  tokensOut: string | null
  failures: ImportFailure[]
  /** The farm failed (or could not be reached): the import stopped there. */
  farmError: {
    message: string
    status?: number
    /** The line ranges of the requests that failed: not imported when the farm refused them (4xx), else imported or not. */
    failedBatches: Array<{ from: number; to: number }>
    /** The first line not sent (the rest of the file was not either); null when everything was sent. */
    notSentFrom: number | null
  } | null
}

export async function importAccounts(ctx: FarmContext): Promise<number> {
  const [file] = positionals(ctx, ['file'], 'accounts')
  const update = ctx.values.update === true
  const tokensOut = stringOption(ctx.values, 'tokens-out')
  const client = ctx.client
  const input = await openInput(file!)
  let tokens: TokensFile | undefined
  try {
    tokens = tokensOut === undefined ? undefined : await TokensFile.open(tokensOut)
  } catch (err) {
    input.stream.destroy()
    throw err
  }
  const importer = new Importer(client, update, tokens, ctx.json, new Progress(input.size))
  const readError = await importer.run(input.stream)
  const summary = importer.summary(file === '-' ? '-' : file!, tokensOut)
  const tokensError = tokens ? await tokens.close() : undefined
  if (ctx.json) printJson(summary)
  else print(summaryText(summary, file === '-' ? 'standard input' : file!))
  if (summary.farmError) printError(`ilp-farm: ${farmErrorText(summary.farmError)}`)
  if (tokensError) printError(`ilp-farm: could not write the generated tokens to ${tokensOut}: ${tokensError.message}; those accounts need a new token`)
  if (readError) {
    printError(`ilp-farm: cannot read ${file}: ${readError.message}`)
    return 2
  }
  return summary.failed > 0 || summary.farmError || tokensError ? 1 : 0
}

/** The file as a stream, opened before anything is sent: a file that cannot be read is bad usage. */
async function openInput(file: string): Promise<{ stream: Readable; size: number | undefined }> {
  if (file === '-') return { stream: process.stdin, size: undefined }
  try {
    const info = await stat(file)
    if (info.isDirectory()) throw new Error('is a directory')
    const stream = createReadStream(file)
    await once(stream, 'open')
    return { stream, size: info.isFile() ? info.size : undefined }
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`, 'accounts')
  }
}

class Importer {
  private readonly counts = { created: 0, updated: 0, unchanged: 0, failed: 0 }
  private lines = 0
  private answered = 0
  private generated = 0
  private readonly failures: ImportFailure[] = []
  private farmError: ImportSummary['farmError'] = null
  /** The last batch whose request failed: the next one joins its line range. */
  private lastFailed = -2
  private readonly queue: Array<{ batch: Batch; answer: Promise<Answer> }> = []
  private readonly started = Date.now()
  private elapsedMs = 0

  constructor(
    private readonly client: AdminClient,
    private readonly update: boolean,
    private readonly tokens: TokensFile | undefined,
    /** Keep the failures for the summary; else they are printed as they come. */
    private readonly json: boolean,
    private readonly progress: Progress,
  ) {}

  /** Reads, sends and reports every line; stops early when the farm fails. Returns the read error, if any. */
  async run(stream: Readable): Promise<Error | undefined> {
    const reader = createInterface({ input: stream, crlfDelay: Infinity })
    let batch = newBatch(0)
    let lineNo = 0
    let bytes = 0
    let readError: Error | undefined
    try {
      for await (const raw of reader) {
        lineNo++
        bytes += Buffer.byteLength(raw) + 1
        const text = lineNo === 1 && raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw
        if (text.trim() === '') continue
        this.lines++
        batch.lines.push(parseLine(lineNo, text))
        batch.endByte = bytes
        if (batch.lines.at(-1)!.text !== undefined) {
          batch.sent++
          batch.chars += text.length + 1
        }
        if (batch.sent >= BATCH_LINES || batch.chars >= BATCH_CHARS) {
          await this.send(batch)
          batch = newBatch(batch.seq + 1)
          if (this.farmError) break
        }
      }
    } catch (err) {
      readError = err as Error
    } finally {
      reader.close()
      if (stream !== process.stdin) stream.destroy()
    }
    if (!this.farmError && !readError) {
      batch.endByte = bytes
      await this.send(batch)
    }
    while (this.queue.length > 0) await this.settleOldest()
    this.elapsedMs = Date.now() - this.started
    this.progress.stop(!this.farmError && !readError, this.answered, this.elapsedMs)
    return readError
  }

  private async send(batch: Batch): Promise<void> {
    if (batch.lines.length === 0) return
    while (this.queue.length >= IN_FLIGHT) await this.settleOldest()
    if (this.farmError) {
      // The farm failed meanwhile: this batch stays unsent, and so does the rest of the file.
      this.farmError.notSentFrom ??= batch.lines[0]!.line
      return
    }
    this.queue.push({ batch, answer: batch.sent === 0 ? Promise.resolve({ results: [] }) : this.post(batch) })
  }

  private async post(batch: Batch): Promise<Answer> {
    const body = `[${batch.lines.flatMap((l) => (l.text === undefined ? [] : [l.text])).join(',')}]`
    try {
      const answer = await this.client.post<{ results?: unknown }>(`/admin/accounts/import${this.update ? '?update=true' : ''}`, new JsonText(body))
      if (!Array.isArray(answer?.results) || answer.results.length !== batch.sent) {
        const got = Array.isArray(answer?.results) ? `${answer.results.length} results` : 'no results'
        return { error: new FarmError(`the farm answered ${got} for ${plural(batch.sent, 'account')}`) }
      }
      return { results: answer.results as ImportResult[] }
    } catch (err) {
      return { error: err instanceof FarmError ? err : new FarmError((err as Error).message) }
    }
  }

  private async settleOldest(): Promise<void> {
    const { batch, answer: pending } = this.queue.shift()!
    const answer = await pending
    if ('error' in answer) {
      // The first failure's message is the one reported; a batch sent with it may still have got through.
      const { message, status } = answer.error
      this.farmError ??= { message, ...(status === undefined ? {} : { status }), failedBatches: [], notSentFrom: null }
      const to = batch.lines.at(-1)!.line
      const ranges = this.farmError.failedBatches
      if (this.lastFailed === batch.seq - 1) ranges.at(-1)!.to = to
      else ranges.push({ from: batch.lines[0]!.line, to })
      this.lastFailed = batch.seq
      // Its lines that are not JSON are refused whatever the farm did.
      for (const line of batch.lines) if (line.error !== undefined) this.fail({ line: line.line, outcome: 'not-json', error: line.error })
      return
    }
    await this.report(batch, answer.results)
    this.progress.update(batch.endByte, this.lines, this.answered, Date.now() - this.started)
  }

  private async report(batch: Batch, results: ImportResult[]): Promise<void> {
    const firstLineOf = new Map<string, number>()
    const tokenLines: string[] = []
    let k = 0
    for (const line of batch.lines) {
      if (line.text === undefined) {
        this.fail({ line: line.line, outcome: 'not-json', error: line.error! })
        continue
      }
      const result = results[k++]!
      this.answered++
      const earlier = line.id === undefined ? undefined : firstLineOf.get(line.id)
      if (line.id !== undefined && earlier === undefined) firstLineOf.set(line.id, line.line)
      switch (result.outcome) {
        case 'created':
          this.counts.created++
          if (result.token !== undefined) {
            this.generated++
            tokenLines.push(`${JSON.stringify({ id: result.id, token: result.token })}\n`)
          }
          break
        case 'updated':
        case 'unchanged':
          this.counts[result.outcome]++
          break
        case 'conflict':
          // The farm takes an id once per batch: the later line is a duplicate in the file, not a race to retry.
          if (earlier !== undefined) {
            this.fail({ line: line.line, id: result.id, outcome: result.outcome, error: `account ${result.id} is also on line ${earlier}: an id may appear once in the file`, duplicateOf: earlier })
            break
          }
          this.fail({ line: line.line, id: result.id, outcome: result.outcome, error: result.error ?? result.outcome })
          break
        default:
          this.fail({
            line: line.line,
            ...(result.id === undefined ? {} : { id: result.id }),
            outcome: result.outcome,
            error: result.error ?? result.outcome,
            ...('issues' in result ? { issues: result.issues } : {}),
          })
      }
    }
    if (tokenLines.length > 0) await this.tokens?.write(tokenLines.join(''))
  }

  private fail(failure: ImportFailure): void {
    this.counts.failed++
    if (this.json) this.failures.push(failure)
    else this.progress.above(`line ${failure.line}: ${failure.error}`)
  }

  summary(file: string, tokensOut: string | undefined): ImportSummary {
    return {
      file,
      update: this.update,
      lines: this.lines,
      ...this.counts,
      elapsedMs: this.elapsedMs,
      accountsPerSecond: rate(this.answered, this.elapsedMs),
      generatedTokens: this.generated,
      tokensOut: tokensOut ?? null,
      failures: this.failures,
      farmError: this.farmError,
    }
  }
}

function newBatch(seq: number): Batch {
  return { seq, lines: [], sent: 0, chars: 0, endByte: 0 }
}

/** A line that is not JSON is refused here; everything else is the farm's to judge, as for POST /admin/accounts. */
function parseLine(line: number, text: string): Line {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    return { line, error: `not JSON: ${(err as Error).message}` }
  }
  const id = value !== null && typeof value === 'object' ? (value as Record<string, unknown>).id : undefined
  return typeof id === 'string' ? { line, text, id } : { line, text }
}

function rate(count: number, ms: number): number {
  return ms <= 0 ? 0 : Math.round((count * 1000) / ms)
}

function summaryText(s: ImportSummary, name: string): string {
  const pairs: Array<[string, string]> = [
    ['created', String(s.created)],
    ['updated', String(s.updated)],
    ['unchanged', String(s.unchanged)],
    ['failed', s.failed === 0 ? '0' : `${s.failed} (listed above by line)`],
  ]
  if (s.generatedTokens > 0) {
    pairs.push([
      'tokens',
      s.tokensOut !== null
        ? `${s.generatedTokens} generated by the farm, appended to ${s.tokensOut}`
        : `${plural(s.generatedTokens, 'token')} generated by the farm and not saved (no --tokens-out): ` +
          'they are shown nowhere else, so those accounts need a new token (PUT /admin/accounts/ID with incoming.token)',
    ])
  }
  const stopped = s.farmError ? ', stopped by a failure of the farm (below)' : ''
  return `${name}: ${plural(s.lines, 'line')} in ${duration(s.elapsedMs)}, ${s.accountsPerSecond} accounts/s${stopped}\n${fields(pairs)}`
}

function farmErrorText(e: NonNullable<ImportSummary['farmError']>): string {
  const ranges = e.failedBatches.map((r) => (r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`))
  const lines = ranges.length === 1 && !ranges[0]!.includes('-') ? `line ${ranges[0]}` : `lines ${ranges.join(', ')}`
  const refused = e.status !== undefined && e.status >= 400 && e.status < 500
  const notSent = e.notSentFrom === null ? '' : `; nothing from line ${e.notSentFrom} on was sent`
  return (
    `the import stopped: ${e.message}\n  ${lines} ${refused ? 'were refused as a whole (not imported)' : 'got no answer (imported or not)'}${notSent}.\n` +
    '  Running the same file again is safe: lines already imported come back unchanged'
  )
}

/** `--tokens-out`: appended to, never truncated, so a second run cannot lose the tokens of the first; owner-only. */
class TokensFile {
  private error: Error | undefined

  private constructor(private readonly stream: WriteStream) {
    stream.on('error', (err) => {
      this.error ??= err
    })
  }

  static async open(path: string): Promise<TokensFile> {
    const stream = createWriteStream(path, { flags: 'a', mode: 0o600 })
    try {
      await once(stream, 'open')
    } catch (err) {
      throw new UsageError(`--tokens-out: cannot write ${path}: ${(err as Error).message}`, 'accounts')
    }
    return new TokensFile(stream)
  }

  async write(text: string): Promise<void> {
    if (this.error) return
    // once() also settles on 'error' (rejecting), so a failed disk does not hang the import.
    if (!this.stream.write(text)) await once(this.stream, 'drain').catch(() => undefined)
  }

  /** Flushed and closed; the first write error, if there was one. */
  async close(): Promise<Error | undefined> {
    if (!this.error) {
      this.stream.end()
      await once(this.stream, 'close').catch(() => undefined)
    }
    return this.error
  }
}

/**
 * The cli-progress bar on stderr, on a terminal only (a pipe or a log file gets the report and the summary,
 * not redraws). Over the file's bytes when its size is known; standard input shows the count alone.
 */
class Progress {
  private readonly bar: cliProgress.SingleBar | undefined
  private readonly known: boolean

  constructor(size: number | undefined) {
    const known = size !== undefined && size > 0
    this.known = known
    if (process.stderr.isTTY !== true) return
    this.bar = new cliProgress.SingleBar({
      stream: process.stderr,
      format: known
        ? 'import [{bar}] {percentage}% | {lines} lines | {rate} accounts/s | ETA {eta_formatted}'
        : 'import | {lines} lines | {rate} accounts/s | {duration_formatted}',
      hideCursor: true,
      barsize: 30,
    })
    this.bar.start(known ? size : 1, 0, { lines: 0, rate: 0 })
  }

  update(byte: number, lines: number, answered: number, elapsedMs: number): void {
    this.bar?.update(this.known ? byte : 0, { lines, rate: rate(answered, elapsedMs) })
  }

  /** A line of the report on stdout; on a terminal the bar's line is cleared first and redrawn at its next tick. */
  above(line: string): void {
    if (this.bar) process.stderr.write('\r\x1b[2K')
    print(line)
  }

  stop(complete: boolean, answered: number, elapsedMs: number): void {
    if (!this.bar) return
    if (complete) this.bar.update(this.bar.getTotal(), { rate: rate(answered, elapsedMs) })
    this.bar.stop()
  }
}
