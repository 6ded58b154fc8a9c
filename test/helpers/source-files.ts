import { readdirSync } from 'node:fs'
import { join } from 'node:path'

/** Every TypeScript source file under `dir` (declaration files aside), for the tests that read the code itself. */
export function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name)
    if (e.isDirectory()) return tsFiles(path)
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path] : []
  })
}
