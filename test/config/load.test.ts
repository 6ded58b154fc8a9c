import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError, loadConfigFile, parseConfig } from '../../src/config/load.js'
import { staticRoutes } from '../../src/routing/routing-table.js'

/**
 * Config validation: every problem is reported as "field.path: reason", so an
 * operator knows exactly which line of the file to fix.
 */

const EXAMPLE = fileURLToPath(new URL('../../config/example.yaml', import.meta.url))

type Raw = Record<string, unknown>

function acct(id: string, fields: Raw = {}): Raw {
  return { id, relation: 'child', assetCode: 'USD', assetScale: 6, incoming: { token: `${id}-token` }, ...fields }
}

function cfg(fields: Raw = {}, accounts: Raw[] = [acct('alice'), acct('bob')]): Raw {
  return { ilpAddress: 'test.farm', accounts, ...fields }
}

/** The problems a config is refused with (fails the test if it is accepted). */
function problemsOf(fn: () => unknown): string[] {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).problems
  }
  expect.fail('expected a ConfigError, but the config was accepted')
}

const problems = (raw: unknown, env: NodeJS.ProcessEnv = {}) => problemsOf(() => parseConfig(raw, 'test', env))

const UINT64_REASON = 'must be a non-negative integer decimal string no larger than 18446744073709551615'
const INT_REASON = 'must be an integer decimal string such as "-1000" or "0"'
const ADDRESS_REASON = 'must be an ILP address such as "test.farm" (RFC 15)'
const PREFIX_REASON = 'must be an ILP address prefix such as "g.bank" or "test" (RFC 15)'

describe('parseConfig', () => {
  it('accepts a minimal config and fills in the defaults', () => {
    const config = parseConfig(cfg(), 'test', {})
    expect(config.http).toEqual({
      host: '127.0.0.1',
      port: 7768,
      requestTimeoutMs: 30_000,
      headersTimeoutMs: 10_000,
      connectionTimeoutMs: 120_000,
      keepAliveTimeoutMs: 65_000,
      maxConnections: 10_000,
    })
    expect(config.rpc).toEqual({ maxBatch: 100, batchConcurrency: 8, maxResponseBytes: 4_000_000 })
    expect(config.workers).toBe(Math.min(availableParallelism(), 256))
    expect(config.farm).toEqual({ heartbeatIntervalMs: 1000, heartbeatTtlMs: 3000, leaderLeaseMs: 5000, sweepIntervalMs: 1000 })
    expect(config.redis.url).toBeUndefined()
    expect(config.redis.dataDir).toBe('data/redis')
    expect(config.routing.broadcastIntervalMs).toBe(60000)
    expect(config.accounts[0]).toMatchObject({ id: 'alice', minBalance: '0', routes: [], sendRoutes: false, receiveRoutes: false })
    expect(config.accounts[0]!.maxBalance).toBeUndefined()
  })

  it('http timeouts: the headers timeout within the request timeout, the idle timeout longer than maxHoldTimeMs', () => {
    expect(problems(cfg({ http: { requestTimeoutMs: 1_000, headersTimeoutMs: 2_000 } }))).toEqual([
      'http.headersTimeoutMs: headersTimeoutMs must be at most requestTimeoutMs',
    ])
    expect(problems(cfg({ maxHoldTimeMs: 150_000 }))).toEqual([
      'http.connectionTimeoutMs: must be longer than maxHoldTimeMs (a request waits that long for its next hop with nothing on the wire)',
    ])
    expect(parseConfig(cfg({ maxHoldTimeMs: 150_000, http: { connectionTimeoutMs: 200_000 } }), 'test', {}).http.connectionTimeoutMs).toBe(200_000)
    expect(problems(cfg({ rpc: { maxBatch: 0 } }))).toEqual([expect.stringMatching(/^rpc\.maxBatch: /)])
  })

  it('names the source in the error message and lists every problem', () => {
    let caught: unknown
    try {
      parseConfig(cfg({ ilpAddress: 'nope', bogus: 1 }), 'my.yaml', {})
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(ConfigError)
    const err = caught as ConfigError
    expect(err.source).toBe('my.yaml')
    expect(err.message).toContain('invalid config my.yaml:')
    expect(err.message).toContain(`  - ilpAddress: ${ADDRESS_REASON}`)
    expect(err.message).toContain('  - bogus: unknown key')
  })

  describe('unknown keys', () => {
    it('at the top level', () => {
      expect(problems(cfg({ colour: 'blue' }))).toEqual(['colour: unknown key'])
    })

    it('inside an account', () => {
      expect(problems(cfg({}, [acct('alice'), acct('bob', { foo: 1 })]))).toEqual(['accounts[1].foo: unknown key'])
    })

    it('inside a nested section, one line per key', () => {
      expect(problems(cfg({ http: { port: 1, porrt: 2, hots: 'x' } }))).toEqual(['http.porrt: unknown key', 'http.hots: unknown key'])
      expect(problems(cfg({}, [acct('alice', { outgoing: { url: 'http://x.test/ilp', tokn: 't' } })]))).toEqual([
        'accounts[0].outgoing.tokn: unknown key',
      ])
    })
  })

  describe('ILP addresses and route prefixes', () => {
    it.each(['farm', 'test.', 'test..farm', 'test.far m', 'bogus.farm', '', 'test'])('refuses ilpAddress %j', (address) => {
      expect(problems(cfg({ ilpAddress: address }))).toEqual([`ilpAddress: ${ADDRESS_REASON}`])
    })

    it('accepts the RFC 15 schemes', () => {
      for (const address of ['g.farm', 'test.farm', 'test3.a.b', 'private.x', 'example.x', 'local.x', 'peer.x', 'self.x']) {
        expect(parseConfig(cfg({ ilpAddress: address }), 'test', {}).ilpAddress).toBe(address)
      }
    })

    it('refuses a malformed account route prefix', () => {
      const accounts = [acct('alice'), acct('up', { relation: 'peer', outgoing: { url: 'http://x.test/ilp' }, routes: ['test.ok', 'test..bad'] })]
      expect(problems(cfg({}, accounts))).toEqual([`accounts[1].routes[1]: ${PREFIX_REASON}`])
    })

    it('refuses a malformed top-level route prefix', () => {
      const accounts = [acct('alice'), acct('up', { relation: 'peer', outgoing: { url: 'http://x.test/ilp' } })]
      expect(problems(cfg({ routes: [{ prefix: 'nowhere.x', account: 'up' }] }, accounts))).toEqual([`routes[0].prefix: ${PREFIX_REASON}`])
    })

    it('accepts a bare scheme as a route prefix', () => {
      const accounts = [acct('alice'), acct('up', { relation: 'peer', outgoing: { url: 'http://x.test/ilp' }, routes: ['g'] })]
      const config = parseConfig(cfg({ routes: [{ prefix: 'test', account: 'up' }] }, accounts), 'test', {})
      expect(staticRoutes(config).lookup('test.anything')?.candidates.map((c) => c.accountId)).toEqual(['up'])
      expect(staticRoutes(config).lookup('g.anything')?.candidates.map((c) => c.accountId)).toEqual(['up'])
    })

    it('refuses a malformed account id', () => {
      expect(problems(cfg({}, [acct('al.ice')]))).toEqual(['accounts[0].id: must be 1-64 characters of a-z A-Z 0-9 _ ~ -'])
    })
  })

  describe('amounts', () => {
    it('refuses an amount given as a number instead of a decimal string', () => {
      expect(problems(cfg({}, [acct('alice', { maxPacketAmount: 1000 })]))).toEqual([
        'accounts[0].maxPacketAmount: must be a decimal string in quotes (a non-negative integer)',
      ])
      expect(problems(cfg({}, [acct('alice', { minBalance: -1000 })]))).toEqual([
        'accounts[0].minBalance: must be a decimal string in quotes (an integer)',
      ])
    })

    it.each(['-5', '1.5', '1e3', '007', '+1', ' 1', '', '18446744073709551616', 'abc'])('refuses maxPacketAmount %j', (amount) => {
      expect(problems(cfg({}, [acct('alice', { maxPacketAmount: amount })]))).toEqual([`accounts[0].maxPacketAmount: ${UINT64_REASON}`])
    })

    it('accepts maxPacketAmount from 0 up to UInt64 max', () => {
      for (const amount of ['0', '1', '18446744073709551615']) {
        expect(parseConfig(cfg({}, [acct('alice', { maxPacketAmount: amount })]), 'test', {}).accounts[0]!.maxPacketAmount).toBe(amount)
      }
    })

    it.each(['1.5', '-0', '--1', '1e3', '007', '-007', 'ten'])('refuses minBalance %j', (amount) => {
      expect(problems(cfg({}, [acct('alice', { minBalance: amount })]))).toEqual([`accounts[0].minBalance: ${INT_REASON}`])
    })

    it('accepts negative balances of any size', () => {
      const huge = '-123456789012345678901234567890'
      expect(parseConfig(cfg({}, [acct('alice', { minBalance: huge })]), 'test', {}).accounts[0]!.minBalance).toBe(huge)
    })

    it('refuses maxBalance below minBalance, compared as big integers', () => {
      expect(problems(cfg({}, [acct('alice'), acct('bob', { minBalance: '100', maxBalance: '99' })]))).toEqual([
        'accounts[1].maxBalance: must not be below minBalance (100)',
      ])
      // 2^53 + 1 vs 2^53: equal as doubles, different as integers
      expect(problems(cfg({}, [acct('alice', { minBalance: '9007199254740993', maxBalance: '9007199254740992' })]))).toEqual([
        'accounts[0].maxBalance: must not be below minBalance (9007199254740993)',
      ])
      expect(parseConfig(cfg({}, [acct('alice', { minBalance: '-5', maxBalance: '-5' })]), 'test', {}).accounts[0]!.maxBalance).toBe('-5')
    })

    it('refuses maxBalance below the default minBalance of 0', () => {
      expect(problems(cfg({}, [acct('alice', { maxBalance: '-1' })]))).toEqual(['accounts[0].maxBalance: must not be below minBalance (0)'])
    })
  })

  describe('required fields', () => {
    it('reports a missing top-level field', () => {
      const { ilpAddress: _dropped, ...raw } = cfg()
      expect(problems(raw)).toEqual(['ilpAddress: is required'])
    })

    it('reports a missing account field', () => {
      const { assetScale: _dropped, ...alice } = acct('alice')
      expect(problems(cfg({}, [alice]))).toEqual(['accounts[0].assetScale: is required'])
    })

    it('reports a missing account relation', () => {
      const { relation: _dropped, ...alice } = acct('alice')
      expect(problems(cfg({}, [alice]))).toEqual(['accounts[0].relation: is required'])
    })

    it('reports a field of the wrong type with its reason, not as missing', () => {
      expect(problems(cfg({ http: { port: '8080' } }))).not.toContain('http.port: is required')
      expect(problems(cfg({ http: { port: '8080' } }))).toEqual([expect.stringMatching(/^http\.port: .*number/)])
    })

    it('refuses a config without accounts', () => {
      expect(problems(cfg({}, []))).toEqual(['accounts: must list at least one account'])
    })

    it('refuses an empty token', () => {
      expect(problems(cfg({}, [acct('alice', { incoming: { token: '' } })]))).toEqual(['accounts[0].incoming.token: must not be empty'])
    })

    it('refuses a relation outside parent|peer|child', () => {
      expect(problems(cfg({}, [acct('alice', { relation: 'friend' })]))).toEqual([
        'accounts[0].relation: Invalid option: expected one of "parent"|"peer"|"child"',
      ])
    })

    it('refuses an outgoing URL that is not http(s)', () => {
      expect(problems(cfg({}, [acct('alice', { outgoing: { url: 'ftp://x.test/ilp' } })]))).toEqual([
        'accounts[0].outgoing.url: must be an http(s) URL',
      ])
    })
  })

  describe('checks across accounts', () => {
    it('refuses a duplicate account id', () => {
      expect(problems(cfg({}, [acct('alice'), acct('bob'), acct('alice')]))).toEqual([
        'accounts[2].id: duplicate account id "alice" (also accounts[0])',
      ])
    })

    it('refuses a top-level route to a missing account', () => {
      expect(problems(cfg({ routes: [{ prefix: 'test.elsewhere', account: 'carol' }] }))).toEqual([
        'routes[0].account: route to a missing account "carol"',
      ])
    })

    it('refuses a route to an account that has nowhere to send', () => {
      expect(problems(cfg({ routes: [{ prefix: 'test.elsewhere', account: 'bob' }] }))).toEqual([
        'routes[0].account: account "bob" has no outgoing.url',
      ])
      expect(problems(cfg({}, [acct('alice', { routes: ['test.x'] })]))).toEqual([
        'accounts[0].routes: an account with routes needs outgoing.url',
      ])
    })

    it('reports every cross-check problem at once', () => {
      const accounts = [acct('alice', { minBalance: '10', maxBalance: '5' }), acct('alice')]
      expect(problems(cfg({ routes: [{ prefix: 'test.x', account: 'zed' }] }, accounts))).toEqual([
        'accounts[0].maxBalance: must not be below minBalance (10)',
        'accounts[1].id: duplicate account id "alice" (also accounts[0])',
        'routes[0].account: route to a missing account "zed"',
      ])
    })
  })

  describe('environment', () => {
    const withToken = (token: string) => cfg({}, [acct('alice', { incoming: { token } }), acct('bob')])

    it('substitutes ${VAR} when it is set', () => {
      const config = parseConfig(withToken('${ALICE_TOKEN}'), 'test', { ALICE_TOKEN: 's3cret' })
      expect(config.accounts[0]!.incoming!.token).toBe('s3cret')
    })

    it('substitutes inside a longer string and several times', () => {
      const config = parseConfig(withToken('pre-${A}-${B:-bee}-post'), 'test', { A: 'x' })
      expect(config.accounts[0]!.incoming!.token).toBe('pre-x-bee-post')
    })

    it('uses the :-default when the variable is unset or empty', () => {
      expect(parseConfig(withToken('${ALICE_TOKEN:-fallback}'), 'test', {}).accounts[0]!.incoming!.token).toBe('fallback')
      expect(parseConfig(withToken('${ALICE_TOKEN:-fallback}'), 'test', { ALICE_TOKEN: '' }).accounts[0]!.incoming!.token).toBe(
        'fallback',
      )
      expect(parseConfig(withToken('${ALICE_TOKEN:-fallback}'), 'test', { ALICE_TOKEN: 'set' }).accounts[0]!.incoming!.token).toBe('set')
    })

    it('refuses an unset variable without default, naming the path and the variable', () => {
      expect(problems(withToken('${ALICE_TOKEN}'))).toEqual(['accounts[0].incoming.token: environment variable ALICE_TOKEN is not set'])
      expect(problems(cfg({ admin: { token: '${ADMIN_TOKEN}' } }))).toEqual(['admin.token: environment variable ADMIN_TOKEN is not set'])
    })

    it('does not read process.env when an env is given', () => {
      process.env.ILP_FARM_TEST_ONLY_VAR = 'from-process'
      try {
        expect(problems(withToken('${ILP_FARM_TEST_ONLY_VAR}'))).toEqual([
          'accounts[0].incoming.token: environment variable ILP_FARM_TEST_ONLY_VAR is not set',
        ])
      } finally {
        delete process.env.ILP_FARM_TEST_ONLY_VAR
      }
    })

    it('lets REDIS_URL override redis.url', () => {
      expect(parseConfig(cfg({ redis: { url: 'redis://file:6379' } }), 'test', {}).redis.url).toBe('redis://file:6379')
      expect(parseConfig(cfg({ redis: { url: 'redis://file:6379' } }), 'test', { REDIS_URL: 'redis://env:6380' }).redis.url).toBe(
        'redis://env:6380',
      )
      expect(parseConfig(cfg(), 'test', { REDIS_URL: 'redis://env:6380' }).redis.url).toBe('redis://env:6380')
    })

    it('takes a Redis Cluster from redis.cluster or REDIS_CLUSTER; never together with a url', () => {
      const seeds = ['redis://10.0.0.5:7000', 'redis://10.0.0.6:7000']
      const fromFile = parseConfig(cfg({ redis: { cluster: seeds } }), 'test', {}).redis
      expect(fromFile.cluster).toEqual(seeds)
      expect(fromFile.url).toBeUndefined()
      expect(fromFile.durability).toBe('none')
      expect(fromFile.durabilityTimeoutMs).toBe(500)
      expect(parseConfig(cfg(), 'test', { REDIS_CLUSTER: ' redis://a:7000, redis://b:7001 ,' }).redis.cluster).toEqual(['redis://a:7000', 'redis://b:7001'])
      // the environment picks the Redis: a url from it replaces the file's cluster, and the other way round
      const envUrl = parseConfig(cfg({ redis: { cluster: seeds } }), 'test', { REDIS_URL: 'redis://env:6380' }).redis
      expect([envUrl.url, envUrl.cluster]).toEqual(['redis://env:6380', undefined])
      const envCluster = parseConfig(cfg({ redis: { url: 'redis://file:6379' } }), 'test', { REDIS_CLUSTER: 'redis://a:7000' }).redis
      expect([envCluster.url, envCluster.cluster]).toEqual([undefined, ['redis://a:7000']])
      expect(problems(cfg({ redis: { url: 'redis://file:6379', cluster: seeds } }))).toEqual([
        'redis.cluster: url and cluster are exclusive: a single Redis (url, REDIS_URL) or the seed nodes of a Redis Cluster (cluster, REDIS_CLUSTER), not both',
      ])
      expect(problems(cfg(), { REDIS_URL: 'redis://a:1', REDIS_CLUSTER: 'redis://b:2' })).toEqual([
        'REDIS_URL and REDIS_CLUSTER: set one of them (a single Redis, or the seed nodes of a Redis Cluster), not both',
      ])
      expect(problems(cfg({ redis: { cluster: [] } }))).toEqual(['redis.cluster: Too small: expected array to have >=1 items'])
      expect(problems(cfg({ redis: { durability: 'all' } }))[0]).toMatch(/^redis\.durability: /)
      // a seed is a redis:// or rediss:// URL with a host and a port; one with a password is not printed
      const seedProblem = 'must be a redis:// or rediss:// URL with a host and a port (redis://10.0.0.5:7000)'
      expect(problems(cfg({ redis: { cluster: ['redis://ok:7000', '10.0.0.5:7000', 'http://h:1', 'redis://h'] } }))).toEqual([
        `redis.cluster[1]: ${seedProblem}`,
        `redis.cluster[2]: ${seedProblem}`,
        `redis.cluster[3]: ${seedProblem}`,
      ])
      expect(parseConfig(cfg({ redis: { cluster: ['rediss://:pw@h:7000'] } }), 'test', {}).redis.cluster).toEqual(['rediss://:pw@h:7000'])
      expect(problems(cfg(), { REDIS_CLUSTER: 'redis://a:1,redis://:secret@b' })).toEqual([`REDIS_CLUSTER: "redis://***@b" ${seedProblem}`])
    })
  })
})

describe('loadConfigFile', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ilp-farm-config-'))
  })
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  const write = (name: string, text: string): string => {
    const file = join(dir, name)
    writeFileSync(file, text)
    return file
  }

  it('loads YAML', () => {
    const file = write(
      'farm.yaml',
      [
        'ilpAddress: test.yaml',
        'http:',
        '  port: 9000',
        'accounts:',
        '  - id: alice',
        '    relation: child',
        '    assetCode: XRP',
        '    assetScale: 9',
        '    minBalance: "-5"',
        '    incoming:',
        '      token: ${TOKEN:-dflt}',
      ].join('\n'),
    )
    const config = loadConfigFile(file, {})
    expect(config.ilpAddress).toBe('test.yaml')
    expect(config.http.port).toBe(9000)
    expect(config.accounts[0]).toMatchObject({ id: 'alice', assetCode: 'XRP', assetScale: 9, minBalance: '-5', incoming: { token: 'dflt' } })
  })

  it('loads JSON', () => {
    const file = write('farm.json', JSON.stringify(cfg({ ilpAddress: 'test.json' })))
    const config = loadConfigFile(file, { REDIS_URL: 'redis://127.0.0.1:1' })
    expect(config.ilpAddress).toBe('test.json')
    expect(config.accounts.map((a) => a.id)).toEqual(['alice', 'bob'])
    expect(config.redis.url).toBe('redis://127.0.0.1:1')
  })

  it('reports field problems of a file with the file as the source', () => {
    const file = write('bad.yaml', 'ilpAddress: test.farm\naccounts:\n  - id: alice\n    relation: child\n    assetCode: USD\n    assetScale: 6\n    minBalance: "1.5"\n')
    let caught: unknown
    try {
      loadConfigFile(file, {})
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(ConfigError)
    expect((caught as ConfigError).source).toBe(file)
    expect((caught as ConfigError).problems).toEqual([`accounts[0].minBalance: ${INT_REASON}`])
  })

  it('reports a YAML amount written without quotes', () => {
    const file = write('unquoted.yaml', 'ilpAddress: test.farm\naccounts:\n  - id: alice\n    relation: child\n    assetCode: USD\n    assetScale: 6\n    maxPacketAmount: 1000\n')
    expect(problemsOf(() => loadConfigFile(file, {}))).toEqual([
      'accounts[0].maxPacketAmount: must be a decimal string in quotes (a non-negative integer)',
    ])
  })

  it('reports a missing file', () => {
    const file = join(dir, 'does-not-exist.yaml')
    expect(problemsOf(() => loadConfigFile(file, {}))).toEqual([
      `(file): cannot read: ENOENT: no such file or directory, open '${file}'`,
    ])
  })

  it('reports a file that cannot be read', () => {
    const folder = join(dir, 'a-folder.yaml')
    mkdirSync(folder, { recursive: true })
    expect(problemsOf(() => loadConfigFile(folder, {}))).toEqual(['(file): cannot read: EISDIR: illegal operation on a directory, read'])
  })

  it('reports invalid YAML syntax', () => {
    const file = write('broken.yaml', 'ilpAddress: test.farm\naccounts:\n  - id: alice\n   relation: [child\n')
    const found = problemsOf(() => loadConfigFile(file, {}))
    expect(found).toHaveLength(1)
    expect(found[0]).toMatch(/^\(file\): not valid YAML: .+ at line \d+, column \d+/)
  })

  it('reports invalid JSON syntax', () => {
    const file = write('broken.json', '{"ilpAddress": "test.farm",')
    const found = problemsOf(() => loadConfigFile(file, {}))
    expect(found).toHaveLength(1)
    expect(found[0]).toMatch(/^\(file\): not valid JSON: /)
  })
})

describe('config/example.yaml', () => {
  it('loads, with at least two accounts and a static route', () => {
    const config = loadConfigFile(EXAMPLE, {})
    expect(config.ilpAddress).toBe('test.farm')
    expect(config.redis.url).toBeUndefined()
    expect(config.accounts.length).toBeGreaterThanOrEqual(2)
    const staticPrefixes = [...config.accounts.flatMap((a) => a.routes), ...config.routes.map((r) => r.prefix)]
    expect(staticPrefixes.length).toBeGreaterThanOrEqual(1)
    const table = staticRoutes(config)
    for (const prefix of staticPrefixes) expect(config.accounts.map((a) => a.id)).toContain(table.lookup(`${prefix}.someone`)?.candidates[0]?.accountId)
    expect(config.admin.token).toBe('change-me-admin-token')
  })

  it('takes its secrets from the environment', () => {
    const config = loadConfigFile(EXAMPLE, { ALICE_TOKEN: 'from-env', ILP_FARM_ADMIN_TOKEN: 'admin-from-env' })
    expect(config.accounts.find((a) => a.id === 'alice')!.incoming!.token).toBe('from-env')
    expect(config.admin.token).toBe('admin-from-env')
  })
})

describe('farm (heartbeats, leader lease, sweeper)', () => {
  it('takes workers and the timings from the config, and refuses a heartbeat TTL not longer than its interval', () => {
    const config = parseConfig(cfg({ workers: 3, farm: { heartbeatIntervalMs: 200, heartbeatTtlMs: 600, leaderLeaseMs: 1000 } }), 'test', {})
    expect(config.workers).toBe(3)
    expect(config.farm).toEqual({ heartbeatIntervalMs: 200, heartbeatTtlMs: 600, leaderLeaseMs: 1000, sweepIntervalMs: 1000 })
    expect(problems(cfg({ farm: { heartbeatIntervalMs: 3000 } }))).toEqual([
      'farm.heartbeatTtlMs: heartbeatTtlMs must be longer than heartbeatIntervalMs',
    ])
    expect(problems(cfg({ farm: { heartbeatIntervalMs: 2000, heartbeatTtlMs: 6000, leaderLeaseMs: 2000 } }))).toEqual([
      'farm.leaderLeaseMs: leaderLeaseMs must be longer than heartbeatIntervalMs',
    ])
    expect(problems(cfg({ farm: { heartbeatTtl: 1 } }))).toEqual(['farm.heartbeatTtl: unknown key'])
  })
})
