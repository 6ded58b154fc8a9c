import type { Server } from 'node:http'
import { deserializeIlpPrepare, deserializeIlpReject, Type as IlpPacketType } from 'ilp-packet'
import PluginHttpModule from 'ilp-plugin-http'

export { freePort } from '../../src/farm/embedded-redis.js'

/**
 * ilp-plugin-http is CommonJS: its module.exports is the class, with
 * `.default` pointing at itself. TypeScript (NodeNext) sees the default import
 * as the whole module, so take `.default`, which is the class either way.
 */
export const PluginHttp = PluginHttpModule.default
export type PluginHttp = InstanceType<typeof PluginHttp>

/** One packet the plugin sent to the farm and what came back. */
export interface SentPacket {
  amount: string
  destination: string
  /** 'fulfill', or the reject's code; 'error' when sendData threw. */
  result: string
  /** A reject's data (F08: received and maximum amounts). */
  data?: Buffer
}

export interface TestPlugin {
  plugin: PluginHttp
  /** Every Prepare the plugin sent through the farm, in order of answer. */
  sent: SentPacket[]
  /** Disconnects the plugin and waits until its HTTP server has really closed. */
  close(): Promise<void>
}

/**
 * An ilp-plugin-http endpoint for one farm account: it POSTs to
 * <farmUrl>/accounts/<accountId>/ilp with `Bearer <outgoingToken>` and accepts
 * the farm's packets on `port` (all interfaces) when they carry
 * `Bearer <incomingToken>`. Not connected yet: STREAM's createServer and
 * createConnection connect it. (outgoing.staticToken is the option that sends
 * "Bearer <token>"; outgoing.secretToken would send the bare token.)
 */
export function createPlugin(opts: {
  port: number
  farmUrl: string
  accountId: string
  outgoingToken: string
  incomingToken: string
}): TestPlugin {
  const plugin = new PluginHttp({
    incoming: { port: opts.port, staticToken: opts.incomingToken },
    outgoing: { url: `${opts.farmUrl}/accounts/${opts.accountId}/ilp`, staticToken: opts.outgoingToken },
  })
  const sent: SentPacket[] = []
  const sendData = plugin.sendData.bind(plugin)
  plugin.sendData = async (data: Buffer): Promise<Buffer> => {
    const { amount, destination } = deserializeIlpPrepare(data)
    try {
      const answer = await sendData(data)
      if (answer[0] === IlpPacketType.TYPE_ILP_FULFILL) sent.push({ amount, destination, result: 'fulfill' })
      else {
        const reject = deserializeIlpReject(answer)
        sent.push({ amount, destination, result: reject.code, data: reject.data })
      }
      return answer
    } catch (err) {
      sent.push({ amount, destination, result: 'error' })
      throw err
    }
  }
  // disconnect() calls server.close() without waiting for it: remember each server's 'close'.
  const servers: Array<{ server: Server; closed: Promise<void> }> = []
  plugin.on('connect', () => {
    const server = (plugin as unknown as { _httpServer: Server })._httpServer
    servers.push({ server, closed: new Promise<void>((resolve) => server.once('close', () => resolve())) })
  })
  return {
    plugin,
    sent,
    async close() {
      if (plugin.isConnected()) await plugin.disconnect()
      for (const { server, closed } of servers) {
        server.closeAllConnections()
        await closed
      }
    },
  }
}
