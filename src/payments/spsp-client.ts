import { lookup as dnsLookup, type LookupAddress } from 'node:dns'
import { BlockList, isIP } from 'node:net'
import { spspFromJson } from '@ilp-farm/protocol'
import { Agent, request } from 'undici'

/** Connection details an SPSP server handed out (RFC 9). */
export interface SpspConnection {
  destinationAccount: string
  sharedSecret: Buffer
}

/** Why a payment pointer could not be used: the message is the caller's to read. */
export class SpspError extends Error {
  override readonly name = 'SpspError'
}

/** Addresses the farm does not fetch from for a user unless told to: its own host and networks. */
const PRIVATE = new BlockList()
for (const [net, bits] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.168.0.0', 16], ['224.0.0.0', 3]] as const) {
  PRIVATE.addSubnet(net, bits, 'ipv4')
}
for (const [net, bits] of [['::', 127], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['::ffff:0:0', 96]] as const) PRIVATE.addSubnet(net, bits, 'ipv6')

const MAX_BODY_BYTES = 16_384
const TIMEOUT_MS = 5_000

/**
 * The SPSP URL of a payment pointer (`$host/path` → `https://host/path`,
 * `$host` → `https://host/.well-known/pay`), or an SPSP URL as given.
 * http: only where allowed (a test farm, an internal network).
 */
export function spspUrl(pointer: string, allowHttp: boolean): URL {
  let url: URL
  try {
    url = pointer.startsWith('$') ? new URL(`https://${pointer.slice(1)}`) : new URL(pointer)
  } catch {
    throw new SpspError('paymentPointer must be a payment pointer ($host/path) or an https SPSP URL')
  }
  if (url.protocol !== 'https:' && !(allowHttp && url.protocol === 'http:')) throw new SpspError('paymentPointer must be a payment pointer ($host/path) or an https SPSP URL')
  if (url.username !== '' || url.password !== '' || url.hash !== '') throw new SpspError('paymentPointer must not carry credentials or a fragment')
  if (pointer.startsWith('$') && (url.pathname === '/' || url.pathname === '')) url.pathname = '/.well-known/pay'
  return url
}

/**
 * Queries SPSP servers for the farm's users (ilp_pay). A user names the URL,
 * so the farm never connects to a loopback, private or link-local address
 * unless `allowPrivate`: the check runs on the address actually connected to
 * (the lookup of the connection itself), so a name that resolves elsewhere
 * later changes nothing. Answers are size- and time-bounded.
 */
export class SpspClient {
  private readonly agent: Agent

  constructor(private readonly opts: { allowPrivate: boolean; allowHttp: boolean }) {
    this.agent = new Agent({
      connect: {
        timeout: TIMEOUT_MS,
        lookup: (hostname, options, callback) => {
          dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
            if (err) return callback(err, '', 4)
            const usable = opts.allowPrivate ? addresses : addresses.filter((a) => !PRIVATE.check(a.address, a.family === 6 ? 'ipv6' : 'ipv4'))
            if (usable.length === 0) return callback(new SpspError(`${hostname} is not a public address`), '', 4)
            if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, usable)
            callback(null, usable[0]!.address, usable[0]!.family)
          })
        },
      },
    })
  }

  async query(pointer: string): Promise<SpspConnection> {
    const url = spspUrl(pointer, this.opts.allowHttp)
    // an IP literal is never looked up: check it here
    const host = url.hostname.replace(/^\[|\]$/g, '')
    if (!this.opts.allowPrivate && isIP(host) !== 0 && PRIVATE.check(host, isIP(host) === 6 ? 'ipv6' : 'ipv4')) {
      throw new SpspError(`${host} is not a public address`)
    }
    let text: string
    try {
      const res = await request(url, {
        dispatcher: this.agent,
        // undici's request follows no redirect: a 3xx is refused below, never followed to another host
        headers: { accept: 'application/spsp4+json, application/spsp+json' },
        headersTimeout: TIMEOUT_MS,
        bodyTimeout: TIMEOUT_MS,
      })
      if (res.statusCode !== 200) {
        await res.body.dump()
        throw new SpspError(`the SPSP server answered HTTP ${res.statusCode}`)
      }
      text = await readLimited(res.body)
    } catch (err) {
      if (err instanceof SpspError) throw err
      const cause = (err as { cause?: unknown }).cause
      throw new SpspError(cause instanceof SpspError ? cause.message : `the SPSP server could not be reached (${(err as Error).message})`)
    }
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      throw new SpspError('the SPSP server answered no JSON')
    }
    try {
      return spspFromJson(body)
    } catch {
      throw new SpspError('the SPSP server answered no destination_account and 32-byte shared_secret')
    }
  }

  close(): Promise<void> {
    return this.agent.close()
  }
}

async function readLimited(body: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.length
    if (size > MAX_BODY_BYTES) throw new SpspError('the SPSP answer is too large')
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}
