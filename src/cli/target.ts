import { readFileSync } from 'node:fs'
import { rootCertificates } from 'node:tls'
import { loadConfigFile } from '../config/load.js'
import type { FarmConfig } from '../config/schema.js'
import type { FarmTarget } from './admin-client.js'
import { UsageError } from './command.js'

/** The farm-locating inputs of a command: its flags and the environment. */
export interface TargetInputs {
  url?: string
  token?: string
  config?: string
  ca?: string
  env: NodeJS.ProcessEnv
}

export const ENV_URL = 'ILP_FARM_URL'
export const ENV_TOKEN = 'ILP_FARM_ADMIN_TOKEN'

/**
 * Where the farm is and its admin token. Each of the two is taken from the
 * first source that has it: the flag (--url, --token), then the environment
 * (ILP_FARM_URL, ILP_FARM_ADMIN_TOKEN), then the --config file (http.host,
 * http.port, http.tls → URL; admin.token). So a config file gives defaults
 * and one flag or variable can still point elsewhere.
 */
export function resolveTarget(inputs: TargetInputs): FarmTarget {
  const config = inputs.config === undefined ? undefined : loadConfigFile(inputs.config, inputs.env)
  const url = firstOf(inputs.url, inputs.env[ENV_URL]) ?? (config ? urlFromConfig(config, inputs.config!) : undefined)
  if (url === undefined) {
    throw new UsageError(`where is the farm? give --url URL, set ${ENV_URL}, or --config FILE (its http.host and http.port)`)
  }
  const token = firstOf(inputs.token, inputs.env[ENV_TOKEN]) ?? config?.admin.token
  if (token === undefined) {
    throw new UsageError(`no admin token: give --token T, set ${ENV_TOKEN}, or --config FILE with admin.token`)
  }
  const ca = trustedCertificates(inputs.ca, config)
  return { url: normalizeUrl(url), token, ...(ca ? { ca } : {}) }
}

function firstOf(...values: Array<string | undefined>): string | undefined {
  return values.find((v) => v !== undefined && v !== '')
}

function normalizeUrl(raw: string): string {
  let parsed: URL
  try {
    parsed = new URL(raw)
  } catch {
    throw new UsageError(`--url: not a URL: "${raw}" (such as http://127.0.0.1:7768)`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new UsageError(`--url: must be http:// or https://, got "${raw}"`)
  }
  // The admin API hangs off the farm's root, whatever path was given; a path prefix behind a proxy is kept.
  return `${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}`
}

/** http(s)://host:port of the config; a wildcard listener is reached on loopback. */
function urlFromConfig(config: FarmConfig, file: string): string {
  const { host, port, tls, publicUrl } = config.http
  if (port === 0) {
    // The port is chosen at start: only publicUrl can say where the farm is.
    if (publicUrl !== undefined) return publicUrl
    throw new UsageError(`${file}: http.port is 0 (chosen when the farm starts): give --url with the port it printed`)
  }
  const scheme = tls ? 'https' : 'http'
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host
  const literal = reachable.includes(':') ? `[${reachable}]` : reachable
  return `${scheme}://${literal}:${port}`
}

/**
 * Extra certificates to trust: --ca FILE, or the farm's own certificate from
 * --config (a self-signed farm then works without flags). Added to Node's
 * roots, not instead of them, so a farm with a publicly signed certificate
 * still verifies.
 */
function trustedCertificates(caFile: string | undefined, config: FarmConfig | undefined): string[] | undefined {
  if (caFile !== undefined) {
    try {
      return [...rootCertificates, readFileSync(caFile, 'utf8')]
    } catch (err) {
      throw new UsageError(`--ca: cannot read ${caFile}: ${(err as Error).message}`)
    }
  }
  const cert = config?.http.tls?.cert
  if (cert === undefined) return undefined
  try {
    return [...rootCertificates, readFileSync(cert, 'utf8')]
  } catch {
    return undefined // not readable from here (another host's path): Node's roots alone then
  }
}
