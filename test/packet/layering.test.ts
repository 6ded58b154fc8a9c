// The packet core sits below the parts that carry packets to it and from it
// (HTTP, async ILP-over-HTTP, JSON-RPC) and below the worker that wires them:
// it declares what it needs (src/packet/ports.ts) and never imports them.
// Type-only imports count: they tie the core to those rooms as much as values do.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve, sep } from 'node:path'
import ts from 'typescript'
import { afterAll, describe, expect, it } from 'vitest'
import { packageRoot } from '../../src/util/package-root.js'
import { tsFiles } from '../helpers/source-files.js'

/** The folders of src/ above the packet core. */
const HIGHER = ['http', 'async', 'rpc', 'farm', 'cli']

/**
 * Each import of a file under `core` (static, type-only, re-export or dynamic)
 * that names a file in one of src's higher folders, as `file -> specifier`.
 */
function upwardImports(src: string, core: string): string[] {
  const higher = HIGHER.map((folder) => join(src, folder) + sep)
  return tsFiles(core).flatMap((file) =>
    ts
      .preProcessFile(readFileSync(file, 'utf8'), true, true)
      .importedFiles.map((f) => f.fileName)
      .filter((specifier) => specifier.startsWith('.'))
      .filter((specifier) => {
        const target = resolve(dirname(file), specifier)
        return higher.some((h) => target.startsWith(h))
      })
      .map((specifier) => `${relative(src, file)} -> ${specifier}`),
  )
}

/** The relative imports of `file`, resolved to .ts files (what `.js` specifiers name in this source tree). */
function importsOf(file: string): string[] {
  return ts
    .preProcessFile(readFileSync(file, 'utf8'), true, true)
    .importedFiles.map((f) => f.fileName)
    .filter((specifier) => specifier.startsWith('.'))
    .map((specifier) => resolve(dirname(file), specifier).replace(/\.js$/, '.ts'))
}

/** Every file the packet core reaches through imports, itself included, that lies in a higher folder: `via -> file`. */
function reachedHigher(src: string, core: string): string[] {
  const higher = HIGHER.map((folder) => join(src, folder) + sep)
  const seen = new Set<string>()
  const found: string[] = []
  const visit = (file: string, via: string) => {
    if (seen.has(file)) return
    seen.add(file)
    if (higher.some((h) => file.startsWith(h))) {
      found.push(`${relative(src, via)} -> ${relative(src, file)}`)
      return
    }
    let next: string[] = []
    try {
      next = importsOf(file)
    } catch {
      return // a package's file, or one that is not there
    }
    for (const target of next) visit(target, file)
  }
  for (const file of tsFiles(core)) visit(file, file)
  return found.sort()
}

describe('packet core layering', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'ilp-farm-layering-'))
  afterAll(() => rmSync(scratch, { recursive: true, force: true }))

  it('finds an import of a higher folder, type-only, re-exported or dynamic, and none of a lower one', () => {
    const src = join(scratch, 'src')
    mkdirSync(join(src, 'packet', 'steps'), { recursive: true })
    writeFileSync(join(src, 'packet', 'a.ts'), "import type { Server } from '../http/server.js'\nimport { x } from '../store/x.js'\n")
    writeFileSync(join(src, 'packet', 'steps', 'b.ts'), "export { y } from '../../rpc/y.js'\n")
    writeFileSync(join(src, 'packet', 'c.ts'), "export const c = () => import('../farm/worker.js')\n// import '../cli/main.js'\n")
    writeFileSync(join(src, 'packet', 'd.ts'), "import { a } from './a.js'\nimport { z } from '../async-like/z.js'\n")
    expect(upwardImports(src, join(src, 'packet')).sort()).toEqual([
      `${join('packet', 'a.ts')} -> ../http/server.js`,
      `${join('packet', 'c.ts')} -> ../farm/worker.js`,
      `${join('packet', 'steps', 'b.ts')} -> ../../rpc/y.js`,
    ])
  })

  it('no file under src/packet/ imports from http/, async/, rpc/, farm/ or cli/', () => {
    const src = join(packageRoot(), 'src')
    const core = join(src, 'packet')
    expect(tsFiles(core).length).toBeGreaterThan(10)
    expect(upwardImports(src, core)).toEqual([])
  })

  it('nothing the packet core imports, however indirectly, imports from them either', () => {
    const src = join(scratch, 'src2')
    mkdirSync(join(src, 'packet'), { recursive: true })
    mkdirSync(join(src, 'accounts'), { recursive: true })
    writeFileSync(join(src, 'packet', 'a.ts'), "import type { S } from '../accounts/s.js'\n")
    writeFileSync(join(src, 'accounts', 's.ts'), "import type { Duty } from '../farm/coordinator.js'\n")
    expect(reachedHigher(src, join(src, 'packet'))).toEqual([`${join('accounts', 's.ts')} -> ${join('farm', 'coordinator.ts')}`])
    const real = join(packageRoot(), 'src')
    expect(reachedHigher(real, join(real, 'packet'))).toEqual([])
  })
})
