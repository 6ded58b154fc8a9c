import { hostname } from 'node:os'

/**
 * A host's name in the farm (`farm.hostId`): every per-worker key carries it,
 * so several supervisors share one Redis without meeting. Letters, digits and
 * `. _ : -` only: it goes into key names and the workers set's members
 * (`<hostId>/<shard>`), where `/`, braces (hash tags) or spaces would not fit.
 */
export const HOST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,100}$/

/** The default host id: this machine's name (characters outside the pattern become `-`) and the HTTP port. */
export function defaultHostId(port: number, machine = hostname()): string {
  const name = machine.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 90) || 'host'
  return `${name}:${port}`
}

/** The host id of a config: `farm.hostId`, else the default from the machine's name and `http.port`. */
export function hostIdOf(config: { farm: { hostId?: string | undefined }; http: { port: number } }): string {
  return config.farm.hostId ?? defaultHostId(config.http.port)
}
