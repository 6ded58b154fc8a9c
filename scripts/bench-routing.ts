/**
 * Micro-benchmark of the routing table and the policy (no Redis, no HTTP):
 * builds a table of N prefixes, then times longest-prefix lookups and
 * candidate choices. Prints numbers; asserts nothing.
 *
 *   npx tsx scripts/bench-routing.ts [--prefixes 100000] [--lookups 1000000]
 */
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { choose } from '../src/routing/policy.js'
import { type CandidateInfo, RoutingTable } from '../src/routing/routing-table.js'

const { values } = parseArgs({ options: { prefixes: { type: 'string', default: '100000' }, lookups: { type: 'string', default: '1000000' } } })
const N = Number(values.prefixes)
const L = Number(values.lookups)
const STATIC: CandidateInfo = { source: 'static', addedBy: 'config' }

// prefixes g.<a>.<b>[.<c>], a quarter of them with two candidates
const prefixes: string[] = []
for (let i = 0; i < N; i++) prefixes.push(i % 3 === 0 ? `g.n${i % 997}.p${i}.q${i % 7}` : `g.n${i % 997}.p${i}`)
const destinations = prefixes.map((p, i) => (i % 2 === 0 ? `${p}.receiver.abc123` : `${p}.x`))

const heapBefore = process.memoryUsage().heapUsed
let t = performance.now()
const table = new RoutingTable()
prefixes.forEach((p, i) => table.set(p, new Map(i % 4 === 0 ? [['hop-a', STATIC], ['hop-b', STATIC]] : [['hop-a', STATIC]])))
const buildMs = performance.now() - t
const heapMb = (process.memoryUsage().heapUsed - heapBefore) / 1e6

let found = 0
t = performance.now()
for (let i = 0; i < L; i++) if (table.lookup(destinations[i % N]!) !== undefined) found++
const lookupNs = ((performance.now() - t) * 1e6) / L

let misses = 0
t = performance.now()
for (let i = 0; i < L; i++) if (table.lookup(`test.nowhere.${i % 1000}.deep.address`) === undefined) misses++
const missNs = ((performance.now() - t) * 1e6) / L

const input = { fromId: 'sender', amount: 10n, random: Math.random, usable: () => true, liquidityOf: () => undefined }
let chosen = 0
const NOW = Date.now()
t = performance.now()
for (let i = 0; i < L; i++) {
  const entry = table.lookup(destinations[i % N]!)!
  if (choose('success-rate', { ...input, entry, now: NOW }).kind === 'chosen') chosen++
}
const routeNs = ((performance.now() - t) * 1e6) / L

console.log(`routing table: ${N} prefixes (1 in 4 with two candidates)`)
console.log(`  build           ${buildMs.toFixed(0)} ms, ~${heapMb.toFixed(0)} MB heap`)
console.log(`  lookup (hit)    ${lookupNs.toFixed(0)} ns/lookup  (${found}/${L} found)`)
console.log(`  lookup (miss)   ${missNs.toFixed(0)} ns/lookup  (${misses}/${L} missed)`)
console.log(`  lookup + choose ${routeNs.toFixed(0)} ns/packet (success-rate; ${chosen}/${L} chosen)`)
