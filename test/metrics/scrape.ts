import parsePrometheusTextFormat, { type PromFamily } from 'parse-prometheus-text-format'
import { request } from 'undici'
import { ADMIN_TOKEN } from '../helpers/farm.js'

/** One /metrics answer, parsed by a Prometheus text parser. */
export interface Scrape {
  readonly text: string
  /** Every family as the parser reads it (counters and gauges with their labels). */
  readonly families: Map<string, PromFamily>
  /**
   * Histogram series (`x_bucket`, `x_sum`, `x_count`) one by one: the parser
   * folds a histogram's samples into one label-less entry and drops the
   * labelled `_sum`/`_count`, so they are also parsed without their `# TYPE`
   * line, which makes each series a family of its own with its labels.
   */
  readonly series: Map<string, PromFamily>
}

export async function getMetrics(farmUrl: string, token: string | null = ADMIN_TOKEN): Promise<{ status: number; contentType: string; text: string }> {
  const headers: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` }
  const res = await request(`${farmUrl}/metrics`, { headers })
  return { status: res.statusCode, contentType: String(res.headers['content-type']), text: await res.body.text() }
}

/** Families by name; one name met several times (a histogram's series come label set by label set) is one family. */
function byName(families: PromFamily[]): Map<string, PromFamily> {
  const map = new Map<string, PromFamily>()
  for (const f of families) {
    const known = map.get(f.name)
    if (known) known.metrics.push(...f.metrics)
    else map.set(f.name, { ...f, metrics: [...f.metrics] })
  }
  return map
}

export function parseScrape(text: string): Scrape {
  const histograms = new Set([...text.matchAll(/^# TYPE (\S+) histogram$/gm)].map((m) => m[1]!))
  const untyped = text
    .split('\n')
    .filter((line) => !/^# TYPE \S+ histogram$/.test(line))
    .join('\n')
  return {
    text,
    families: byName(parsePrometheusTextFormat(text)),
    series: byName(parsePrometheusTextFormat(untyped).filter((f) => [...histograms].some((h) => f.name.startsWith(`${h}_`)))),
  }
}

function sameLabels(a: Record<string, string> | undefined, b: Record<string, string>): boolean {
  const x = a ?? {}
  return Object.keys(x).length === Object.keys(b).length && Object.entries(b).every(([k, v]) => x[k] === v)
}

/** The value of the sample of `name` with exactly these labels; undefined when there is none. */
export function valueOf(scrape: Scrape, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = scrape.families.get(name) ?? scrape.series.get(name)
  const sample = family?.metrics.find((m) => sameLabels(m.labels, labels))
  return sample?.value === undefined ? undefined : Number(sample.value)
}

/** Every sample of a family: its labels and value. */
export function samplesOf(scrape: Scrape, name: string): Array<{ labels: Record<string, string>; value: number }> {
  const family = scrape.families.get(name) ?? scrape.series.get(name)
  return (family?.metrics ?? []).map((m) => ({ labels: m.labels ?? {}, value: Number(m.value) }))
}
