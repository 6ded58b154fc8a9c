// No module of src/ may import itself back through others: a cycle makes a
// module's exports undefined while the cycle is still loading, and ties two
// rooms together so that neither can be read or moved alone. Type-only
// imports count too: they tie the rooms together as much as values do.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import ts from 'typescript'
import { afterAll, describe, expect, it } from 'vitest'
import { packageRoot } from '../../src/util/package-root.js'
import { tsFiles } from '../helpers/source-files.js'

/** The file a relative specifier names, as NodeNext resolves it from TypeScript sources ('./x.js' is './x.ts'). */
function resolveRelative(from: string, specifier: string): string | undefined {
  const base = resolve(dirname(from), specifier)
  const candidates = [base.replace(/\.js$/, '.ts'), `${base}.ts`, join(base, 'index.ts')]
  return candidates.find((c) => c.endsWith('.ts') && existsSync(c))
}

/** Each file under root and the files under root it imports (static, type-only, re-export or dynamic). */
function importGraph(root: string): Map<string, string[]> {
  const files = tsFiles(root)
  const inside = new Set(files)
  const graph = new Map<string, string[]>()
  for (const file of files) {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true)
    const targets = info.importedFiles
      .map((f) => f.fileName)
      .filter((s) => s.startsWith('.'))
      .map((s) => resolveRelative(file, s))
      .filter((t): t is string => t !== undefined && inside.has(t))
    graph.set(file, [...new Set(targets)])
  }
  return graph
}

/** Every strongly connected set of more than one file, or a file importing itself (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  const visit = (v: string): void => {
    index.set(v, next)
    low.set(v, next)
    next++
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!))
      }
    }
    if (low.get(v) !== index.get(v)) return
    const component: string[] = []
    let w: string
    do {
      w = stack.pop()!
      onStack.delete(w)
      component.push(w)
    } while (w !== v)
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort())
  }
  for (const v of graph.keys()) if (!index.has(v)) visit(v)
  return found
}

describe('import cycles', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'ilp-farm-cycles-'))
  afterAll(() => rmSync(scratch, { recursive: true, force: true }))

  it('finds a cycle through a type-only import and a re-export, and none in a chain', () => {
    writeFileSync(join(scratch, 'a.ts'), "import { b } from './b.js'\nexport const a = b\n")
    writeFileSync(join(scratch, 'b.ts'), "export { c as b } from './c.js'\n")
    writeFileSync(join(scratch, 'c.ts'), "import type { A } from './a.js'\nexport const c = 1\nexport type C = A\n")
    writeFileSync(join(scratch, 'd.ts'), "import { a } from './a.js'\nexport const d = a\n")
    writeFileSync(join(scratch, 'e.ts'), "export const e = 1 // import { d } from './d.js'\n")
    const names = (set: string[]) => set.map((f) => relative(scratch, f))
    expect(cycles(importGraph(scratch)).map(names)).toEqual([['a.ts', 'b.ts', 'c.ts']])

    writeFileSync(join(scratch, 'c.ts'), 'export const c = 1\n')
    expect(cycles(importGraph(scratch))).toEqual([])
  })

  it('src/ has none', () => {
    const src = join(packageRoot(), 'src')
    const graph = importGraph(src)
    expect(graph.size).toBeGreaterThan(50)
    const found = cycles(graph).map((set) => set.map((f) => relative(src, f)).join(' <-> '))
    expect(found).toEqual([])
  })
})
