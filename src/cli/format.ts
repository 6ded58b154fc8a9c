import Table from 'cli-table3'

export interface Column {
  header: string
  /** Numbers read best right-aligned. */
  align?: 'left' | 'right'
}

/** A table for people (cli-table3), without colours so it reads the same in a terminal, a pipe or a log file. */
export function table(columns: Array<string | Column>, rows: string[][]): string {
  const cols = columns.map((c) => (typeof c === 'string' ? { header: c } : c))
  const t = new Table({
    head: cols.map((c) => c.header),
    colAligns: cols.map((c) => c.align ?? 'left'),
    style: { head: [], border: [] },
    // No rule between rows: a long list stays readable on one screen.
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
  })
  t.push(...rows)
  return t.toString()
}

/** Label/value pairs, one per line, values aligned: for a single object (an account, a transfer). */
export function fields(pairs: Array<[string, string]>): string {
  const width = Math.max(...pairs.map(([k]) => k.length))
  return pairs.map(([k, v]) => `  ${`${k}:`.padEnd(width + 1)} ${v}`).join('\n')
}

/**
 * A base-unit integer string in asset units: "-250" at scale 6 is "-0.000250".
 * Pure string work: balances may exceed 2^53, where a Number would lie.
 */
export function units(base: string, scale: number): string {
  const negative = base.startsWith('-')
  const digits = negative ? base.slice(1) : base
  if (!/^\d+$/.test(digits) || scale <= 0) return base
  const padded = digits.padStart(scale + 1, '0')
  const whole = padded.slice(0, padded.length - scale)
  return `${negative ? '-' : ''}${whole}.${padded.slice(whole.length)}`
}

/** "250 (0.000250 USD)": base units as the farm counts them, and what they mean. */
export function money(base: string | null, asset: { assetCode: string; assetScale: number }): string {
  if (base === null) return 'none'
  return `${base} (${units(base, asset.assetScale)} ${asset.assetCode})`
}

/** A duration for people: 850 ms, 12.3 s, 4 min 10 s, 2 h 5 min, 3 d 4 h. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms)) return 'n/a'
  const sign = ms < 0 ? '-' : ''
  const abs = Math.abs(ms)
  if (abs < 1_000) return `${sign}${Math.round(abs)} ms`
  if (abs < 60_000) return `${sign}${(abs / 1_000).toFixed(1)} s`
  const s = Math.floor(abs / 1_000)
  if (s < 3_600) return `${sign}${Math.floor(s / 60)} min ${s % 60} s`
  if (s < 86_400) return `${sign}${Math.floor(s / 3_600)} h ${Math.floor((s % 3_600) / 60)} min`
  return `${sign}${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3_600)} h`
}

/** Time to an instant: "in 4.2 s", or "3.0 s ago" once it has passed. */
export function until(atMs: number, now: number): string {
  const left = atMs - now
  return left >= 0 ? `in ${duration(left)}` : `${duration(-left)} ago`
}

export function percent(ratio: number): string {
  return Number.isFinite(ratio) ? `${(ratio * 100).toFixed(ratio < 0.1 && ratio > 0 ? 1 : 0)}%` : 'n/a'
}

export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`
}
