import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { serializeIlpPrepare } from 'ilp-packet'
import { Agent, request } from 'undici'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { account, FARM_ADDRESS, prepareTo, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/** With http.tls set the worker serves HTTPS only; the certificate is made at test time. */
let dir: string
let redis: TestRedis
let farm: TestFarm
let bob: TestPeer
let ca: Buffer

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ilp-farm-tls-'))
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert,
  ], { stdio: 'ignore' })
  ca = readFileSync(cert)
  redis = await startTestRedis()
  bob = await startTestPeer(fulfillKnown)
  farm = await startTestFarm(redis.url, [account('alice', { minBalance: '-1000' }), account('bob', { outgoing: { url: bob.url } })], {
    http: { host: '127.0.0.1', port: 0, tls: { cert, key } },
  })
})

afterAll(async () => {
  await farm?.close()
  await bob?.close()
  await redis?.close()
  rmSync(dir, { recursive: true, force: true })
})

it('serves ILP-over-HTTP over HTTPS with the configured certificate', async () => {
  expect(farm.url.startsWith('https://')).toBe(true)
  const dispatcher = new Agent({ connect: { ca } })
  const res = await request(`${farm.url}/accounts/alice/ilp`, {
    method: 'POST',
    dispatcher,
    headers: { authorization: 'Bearer alice-token', 'content-type': 'application/octet-stream' },
    body: serializeIlpPrepare(prepareTo(`${FARM_ADDRESS}.bob`, '5', knownCondition())),
  })
  expect(res.statusCode).toBe(200)
  expect(Buffer.from(await res.body.arrayBuffer())[0]).toBe(13)
  await dispatcher.close()
})

it('refuses plain HTTP on the HTTPS port', async () => {
  const plain = farm.url.replace('https://', 'http://')
  await expect(request(`${plain}/health`, { headersTimeout: 3000, bodyTimeout: 3000 }).then((r) => r.body.text())).rejects.toThrow()
})
