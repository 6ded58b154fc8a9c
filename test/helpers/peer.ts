import { createHash, randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { deserializeIlpPrepare, type IlpPrepare, serializeIlpFulfill, serializeIlpReject } from 'ilp-packet'

/** What a test peer does with a prepare: answer bytes, an HTTP status, or never answer. */
export type PeerAction = Buffer | { status: number } | 'hang'

export interface TestPeer {
  url: string
  received: Array<{ prepare: IlpPrepare; headers: IncomingMessage['headers'] }>
  close(): Promise<void>
}

export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

/** A real HTTP next hop on loopback. */
export async function startTestPeer(handle: (prepare: IlpPrepare) => PeerAction | Promise<PeerAction>): Promise<TestPeer> {
  const received: TestPeer['received'] = []
  const hanging = new Set<import('node:http').ServerResponse>()
  const server: Server = createServer(async (req, res) => {
    const prepare = deserializeIlpPrepare(await readBody(req))
    received.push({ prepare, headers: req.headers })
    const action = await handle(prepare)
    if (action === 'hang') {
      hanging.add(res)
      return
    }
    if (Buffer.isBuffer(action)) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(action)
    } else {
      res.writeHead(action.status).end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/ilp`,
    received,
    async close() {
      for (const res of hanging) res.destroy()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** A condition/fulfillment pair for test packets. */
export function makeCondition(): { fulfillment: Buffer; condition: Buffer } {
  const fulfillment = randomBytes(32)
  return { fulfillment, condition: createHash('sha256').update(fulfillment).digest() }
}

export const fulfillmentStore = new Map<string, Buffer>()

/** A condition whose fulfillment the `fulfillKnown` peer behaviour can look up. */
export function knownCondition(): Buffer {
  const { fulfillment, condition } = makeCondition()
  fulfillmentStore.set(condition.toString('hex'), fulfillment)
  return condition
}

export function fulfillKnown(prepare: IlpPrepare): Buffer {
  const fulfillment = fulfillmentStore.get(prepare.executionCondition.toString('hex'))
  if (!fulfillment) return serializeIlpReject({ code: 'F99', triggeredBy: 'test.peer', message: 'unknown condition', data: Buffer.alloc(0) })
  return serializeIlpFulfill({ fulfillment, data: Buffer.from('paid') })
}
