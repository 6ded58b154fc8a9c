import { type Connection, createServer, type DataAndMoneyStream, type Server } from 'ilp-protocol-stream'
import 'ilp-farm-client/stream-compat'

/** A STREAM server that accepts one connection and counts every unit of money it receives. */
export interface StreamReceiver {
  readonly server: Server
  readonly destinationAccount: string
  readonly sharedSecret: Buffer
  /** Resolves with the connection once the sender has connected. */
  readonly accepted: Promise<Connection>
  /** Money received so far, over all streams. */
  received(): bigint
}

type StreamPlugin = Parameters<typeof createServer>[0]['plugin']

export async function startStreamReceiver(plugin: StreamPlugin): Promise<StreamReceiver> {
  const server = await createServer({ plugin })
  let received = 0n
  const accepted = server.acceptConnection().then((conn) => {
    conn.on('stream', (stream: DataAndMoneyStream) => {
      stream.setReceiveMax(Infinity)
      stream.on('money', (amount: string) => {
        received += BigInt(amount)
      })
    })
    return conn
  })
  const { destinationAccount, sharedSecret } = server.generateAddressAndSecret()
  return { server, destinationAccount, sharedSecret, accepted, received: () => received }
}
