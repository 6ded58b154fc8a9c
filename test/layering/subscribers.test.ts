// Pub/sub connections are opened in one place, openSubscriber (src/store/redis.ts):
// it knows sharded pub/sub on one Redis and on a cluster, and tells its user of
// each reconnect (messages published meanwhile are gone). A module that
// subscribed on its own would get neither.
import { readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'
import { packageRoot } from '../../src/util/package-root.js'
import { tsFiles } from '../helpers/source-files.js'

const SUBSCRIBE_CALLS = new Set(['subscribe', 'ssubscribe', 'psubscribe'])

/** The names of the methods and functions `source` calls (`x.ssubscribe(...)` gives ssubscribe), comments and strings aside. */
function calledNames(fileName: string, source: string): Set<string> {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS)
  const names = new Set<string>()
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node)) {
      const callee = node.expression
      if (ts.isPropertyAccessExpression(callee)) names.add(callee.name.text)
      else if (ts.isIdentifier(callee)) names.add(callee.text)
    }
    ts.forEachChild(node, visit)
  }
  visit(file)
  return names
}

function subscribes(fileName: string, source: string): boolean {
  return [...calledNames(fileName, source)].some((n) => SUBSCRIBE_CALLS.has(n))
}

describe('subscriber connections', () => {
  it('a subscribe call is found in code, not in a comment or a string', () => {
    expect(subscribes('a.ts', "const c = connect()\nawait c.ssubscribe('ch')\n")).toBe(true)
    expect(subscribes('b.ts', "redis.subscribe('ch', () => undefined)\n")).toBe(true)
    expect(subscribes('c.ts', "// then redis.subscribe('ch')\nconst s = 'x.psubscribe(y)'\n")).toBe(false)
  })

  it('only store/redis.ts subscribes; the registry, async replies and the address mapper go through openSubscriber', () => {
    const src = join(packageRoot(), 'src')
    const files = tsFiles(src).map((path) => ({ name: relative(src, path), source: readFileSync(path, 'utf8') }))
    expect(files.length).toBeGreaterThan(50)
    expect(files.filter((f) => subscribes(f.name, f.source)).map((f) => f.name)).toEqual([join('store', 'redis.ts')])
    const users = files.filter((f) => calledNames(f.name, f.source).has('openSubscriber')).map((f) => f.name)
    expect(users.sort()).toEqual([join('accounts', 'registry.ts'), join('async', 'replies.ts'), join('routing', 'address-mapper.ts')])
  })
})
