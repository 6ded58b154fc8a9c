import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { type EmbeddedRedis, startEmbeddedRedis } from '../../src/farm/embedded-redis.js'

export interface TestRedis extends EmbeddedRedis {
  /** A plain client for assertions. */
  client: Redis
  close(): Promise<void>
}

/** A real redis-server on a free loopback port, in a throwaway folder. */
export async function startTestRedis(opts: { appendonly?: boolean } = {}): Promise<TestRedis> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ilp-farm-redis-'))
  const redis = await startEmbeddedRedis({ dataDir, appendonly: opts.appendonly ?? false })
  const client = new Redis(redis.url, { lazyConnect: true })
  await client.connect()
  return {
    ...redis,
    client,
    async close() {
      client.disconnect()
      await redis.stop()
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
