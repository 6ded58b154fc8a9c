import { defineConfig } from 'vitest/config'

// The workspace packages (packages/*) are imported as their TypeScript source
// under the `ilp-farm-source` export condition, as tsc (tsconfig.json) and
// the CLIs run with tsx (test/helpers/cli.ts) read them: no build before a test.
const conditions = ['ilp-farm-source', 'node', 'import', 'module', 'default']

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ['ilp-farm-source'] } },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
  },
})
