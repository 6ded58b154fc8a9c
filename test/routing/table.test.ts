import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { choose, type HopLiquidity, type RoutingPolicy } from '../../src/routing/policy.js'
import { type CandidateInfo, configRoutes, RoutingTable } from '../../src/routing/routing-table.js'
import { DEAD_AFTER_FAILURES, FIRST_BACKOFF_MS } from '../../src/routing/stats.js'

/** A small deterministic PRNG (mulberry32), so the policy tests do not depend on luck. */
function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const STATIC: CandidateInfo = { source: 'static', addedBy: 'config' }

function tableWith(routes: Record<string, string[]>): RoutingTable {
  const table = new RoutingTable()
  for (const [prefix, accounts] of Object.entries(routes)) table.set(prefix, new Map(accounts.map((a) => [a, STATIC])))
  return table
}

function ids(table: RoutingTable, destination: string): string[] | undefined {
  return table.lookup(destination)?.candidates.map((c) => c.accountId)
}

describe('routing table', () => {
  it('matches the longest prefix on segment boundaries only', () => {
    const table = tableWith({ g: ['root'], 'g.a': ['a'], 'g.a.b': ['ab'], 'test.x': ['x'] })
    expect(ids(table, 'g.a.b.c')).toEqual(['ab'])
    expect(ids(table, 'g.a.b')).toEqual(['ab'])
    expect(ids(table, 'g.a.bc')).toEqual(['a'])
    expect(ids(table, 'g.ab')).toEqual(['root'])
    expect(ids(table, 'g')).toEqual(['root'])
    expect(ids(table, 'test.xy')).toBeUndefined()
    expect(ids(table, 'test')).toBeUndefined()
    expect(ids(table, 'example.a')).toBeUndefined()
  })

  it('keeps several candidates per prefix, sorted, and their stats across a reload of the prefix', () => {
    const table = tableWith({ 'g.multi': ['zed', 'amy'] })
    expect(ids(table, 'g.multi.x')).toEqual(['amy', 'zed'])
    const amy = table.get('g.multi')!.candidates[0]!
    amy.stats.record('success', 1000)
    table.add('g.multi', 'bob', { source: 'static', addedBy: 'admin' })
    const entry = table.get('g.multi')!
    expect(entry.candidates.map((c) => [c.accountId, c.info.addedBy])).toEqual([
      ['amy', 'config'],
      ['bob', 'admin'],
      ['zed', 'config'],
    ])
    expect(entry.candidates[0]!.stats).toBe(amy.stats)
    expect(entry.candidates[0]!.stats.successes).toBe(1)
    // removing the prefix drops it and its stats; adding it back starts afresh
    table.delete('g.multi')
    expect(table.lookup('g.multi.x')).toBeUndefined()
    table.add('g.multi', 'amy')
    expect(table.get('g.multi')!.candidates[0]!.stats.successes).toBe(0)
  })

  it('replaceAll removes prefixes that are gone and keeps the stats of the candidates that stay', () => {
    const table = tableWith({ 'g.a': ['x', 'y'], 'g.b': ['x'] })
    const xa = table.get('g.a')!.candidates[0]!.stats
    table.replaceAll(new Map([['g.a', new Map([['x', STATIC]])]]))
    expect(table.size).toBe(1)
    expect(table.get('g.a')!.candidates.map((c) => c.accountId)).toEqual(['x'])
    expect(table.get('g.a')!.candidates[0]!.stats).toBe(xa)
  })

  it('takes every static route of the config as a candidate: account routes, top-level routes (children are routed by address, not by table)', () => {
    const config = parseConfig(
      {
        ilpAddress: 'test.farm',
        accounts: [
          { id: 'kid', relation: 'child', assetCode: 'USD', assetScale: 2, outgoing: { url: 'http://k.test/' } },
          { id: 'p1', relation: 'peer', assetCode: 'USD', assetScale: 2, outgoing: { url: 'http://p1.test/' }, routes: ['g.shared'] },
          { id: 'p2', relation: 'peer', assetCode: 'USD', assetScale: 2, outgoing: { url: 'http://p2.test/' } },
        ],
        routes: [{ prefix: 'g.shared', account: 'p2' }],
      },
      'test',
      {},
    )
    const routes = configRoutes(config)
    expect([...routes.entries()].map(([p, a]) => [p, [...a].sort()])).toEqual([['g.shared', ['p1', 'p2']]])
  })
})

describe('routing policies', () => {
  const NOW = 1_000_000
  const usable = () => true

  function picks(
    policy: RoutingPolicy,
    table: RoutingTable,
    opts: { n?: number; from?: string; amount?: bigint; liquidity?: Record<string, HopLiquidity>; now?: number } = {},
  ): Map<string, number> {
    const counts = new Map<string, number>()
    const random = seeded(42)
    const entry = table.get('g.p')!
    for (let i = 0; i < (opts.n ?? 1000); i++) {
      const choice = choose(policy, {
        entry,
        fromId: opts.from ?? 'sender',
        amount: opts.amount ?? 10n,
        now: opts.now ?? NOW,
        random,
        usable,
        liquidityOf: (id) => opts.liquidity?.[id],
      })
      const key = choice.kind === 'chosen' ? choice.candidate.accountId : choice.kind
      counts.set(key, (counts.get(key) ?? 0) + 1)
    }
    return counts
  }

  it('success-rate: a hop failing half its packets gets a small share; equal records share evenly', () => {
    const table = tableWith({ 'g.p': ['good', 'flaky'] })
    const [flaky, good] = table.get('g.p')!.candidates
    good!.stats.setWindow(100, 0, NOW)
    flaky!.stats.setWindow(50, 50, NOW)
    const skewed = picks('success-rate', table)
    expect(skewed.get('good')!).toBeGreaterThan(900)
    expect(skewed.get('flaky')!).toBeGreaterThan(0)

    flaky!.stats.setWindow(100, 0, NOW)
    const even = picks('success-rate', table)
    expect(even.get('good')!).toBeGreaterThan(400)
    expect(even.get('flaky')!).toBeGreaterThan(400)
  })

  it('success-rate: a hop that just answered T01 is tried less, and less so as the penalty decays', () => {
    const table = tableWith({ 'g.p': ['a', 'b'] })
    const [a] = table.get('g.p')!.candidates
    for (let i = 0; i < 3; i++) a!.stats.record('transient-failure', NOW)
    a!.stats.setWindow(10, 0, NOW) // same window as b: only the recent T01s differ
    table.get('g.p')!.candidates[1]!.stats.setWindow(10, 0, NOW)
    const fresh = picks('success-rate', table)
    expect(fresh.get('a')!).toBeLessThan(350)
    const later = picks('success-rate', table, { now: NOW + 60_000 })
    expect(later.get('a')!).toBeGreaterThan(400)
  })

  it('never picks the sender; only the sender left is no route', () => {
    const table = tableWith({ 'g.p': ['a', 'b'] })
    expect(picks('success-rate', table, { from: 'a' })).toEqual(new Map([['b', 1000]]))
    const single = tableWith({ 'g.p': ['a'] })
    expect(picks('lowest-balance', single, { from: 'a', n: 1 })).toEqual(new Map([['no-route', 1]]))
    expect(choose('success-rate', { entry: single.get('g.p')!, fromId: 'x', amount: 1n, now: NOW, random: Math.random, usable: () => false, liquidityOf: () => undefined }).kind).toBe('no-route')
  })

  it('highest-balance picks the hop the farm owes most, lowest-balance the one it owes least', () => {
    const table = tableWith({ 'g.p': ['a', 'b', 'c'] })
    const liquidity = {
      a: { balance: 500n, liquidity: undefined },
      b: { balance: -20n, liquidity: undefined },
      c: { balance: 70n, liquidity: 1000n },
    }
    expect(picks('highest-balance', table, { liquidity })).toEqual(new Map([['a', 1000]]))
    expect(picks('lowest-balance', table, { liquidity })).toEqual(new Map([['b', 1000]]))
  })

  it('prefers candidates with liquidity for the packet, and picks anyway when none has (the reservation then says T04)', () => {
    const table = tableWith({ 'g.p': ['a', 'b'] })
    const liquidity = { a: { balance: 0n, liquidity: 5n }, b: { balance: 900n, liquidity: 100n } }
    expect(picks('lowest-balance', table, { liquidity, amount: 10n })).toEqual(new Map([['b', 1000]]))
    expect(picks('success-rate', table, { liquidity, amount: 10n })).toEqual(new Map([['b', 1000]]))
    const lowest = picks('lowest-balance', table, { liquidity, amount: 500n })
    expect(lowest).toEqual(new Map([['a', 1000]]))
  })

  it('a dead candidate (consecutive failures) is skipped, probed once after its backoff, and alive again after a success', () => {
    const table = tableWith({ 'g.p': ['a', 'b'] })
    const [a] = table.get('g.p')!.candidates
    for (let i = 0; i < DEAD_AFTER_FAILURES; i++) a!.stats.record('failure', NOW)
    expect(a!.stats.isDead(NOW)).toBe(true)
    expect(picks('success-rate', table)).toEqual(new Map([['b', 1000]]))
    // after the backoff: exactly one probe goes to it, then it is skipped again until it answers
    const after = NOW + FIRST_BACKOFF_MS
    const probing = picks('success-rate', table, { now: after, n: 100 })
    expect(probing.get('a')).toBe(1)
    // the probe failed: the backoff doubles
    a!.stats.record('failure', after)
    expect(a!.stats.isDead(after + FIRST_BACKOFF_MS)).toBe(true)
    expect(a!.stats.probeDue(after + 2 * FIRST_BACKOFF_MS)).toBe(true)
    // a success makes it alive
    a!.stats.record('success', after + 2 * FIRST_BACKOFF_MS)
    expect(a!.stats.isDead(after + 2 * FIRST_BACKOFF_MS)).toBe(false)
    expect(a!.stats.consecutiveFailures).toBe(0)
  })

  it('when every candidate is dead, the packet still goes to the one whose probe is nearest', () => {
    const table = tableWith({ 'g.p': ['a', 'b'] })
    const [a, b] = table.get('g.p')!.candidates
    for (let i = 0; i < DEAD_AFTER_FAILURES; i++) b!.stats.record('failure', NOW)
    for (let i = 0; i < DEAD_AFTER_FAILURES; i++) a!.stats.record('failure', NOW + 100)
    expect(picks('success-rate', table, { now: NOW + 200, n: 10 })).toEqual(new Map([['b', 10]]))
  })

  it('a neutral answer (a downstream F-code) counts neither way but shows the hop is alive', () => {
    const table = tableWith({ 'g.p': ['a'] })
    const s = table.get('g.p')!.candidates[0]!.stats
    for (let i = 0; i < DEAD_AFTER_FAILURES - 1; i++) s.record('failure', NOW)
    s.record('neutral', NOW)
    s.record('failure', NOW)
    expect(s.isDead(NOW)).toBe(false)
    expect([s.successes, s.failures, s.pendingFailures]).toEqual([0, DEAD_AFTER_FAILURES, DEAD_AFTER_FAILURES])
  })
})
