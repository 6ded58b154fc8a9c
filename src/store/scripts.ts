import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { packageRoot } from '../util/package-root.js'

const LIBRARIES = ['lib/bigint.lua', 'lib/entry.lua']

export interface ScriptSpec {
  name: string
  numberOfKeys: number
  lua: string
}

/** Each script is its body with the shared libraries in front (Redis scripts cannot import). */
export function loadScripts(): ScriptSpec[] {
  const luaDir = join(packageRoot(), 'lua')
  const read = (file: string): string => readFileSync(join(luaDir, file), 'utf8')
  const prelude = LIBRARIES.map(read).join('\n')
  const script = (file: string, numberOfKeys: number): ScriptSpec => ({
    name: file.replace(/\.lua$/, ''),
    numberOfKeys,
    lua: `${prelude}\n${read(file)}`,
  })
  return [script('prepare.lua', 4), script('fulfill.lua', 3), script('reject.lua', 4)]
}
