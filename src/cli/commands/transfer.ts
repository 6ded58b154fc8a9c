import { randomUUID } from 'node:crypto'
import { FarmError } from '../admin-client.js'
import { type FarmCommand, type FarmContext, positionals, print, printError, printJson, stringOption, UsageError } from '../command.js'
import type { TransferResult } from '../views.js'

type Kind = 'deposit' | 'withdraw'

const PATHS: Record<Kind, string> = { deposit: 'deposits', withdraw: 'withdrawals' }

const usage = (kind: Kind) => `Usage: ilp-farm ${kind} ID AMOUNT [--key KEY]

${kind === 'deposit' ? 'Credits the account with AMOUNT (raises its balance: the farm owes the holder more),\nsuch as money the holder paid in off-ledger.' : 'Debits the account by AMOUNT (lowers its balance), such as money paid out to the\nholder off-ledger. Refused (exit 1) when it would take the balance below minBalance.'}
AMOUNT is a positive integer in the account's base units.

  --key KEY   the Idempotency-Key: the farm applies one key at most once, so a
              retry after a lost answer cannot ${kind} twice. Default: a fresh
              UUID, printed on stderr before the request so it can be reused.
`

function transferCommand(kind: Kind): FarmCommand {
  return {
    name: kind,
    summary: [`${kind} ID AMOUNT`, kind === 'deposit' ? 'credit an account (idempotent with --key)' : 'debit an account (idempotent with --key)'],
    scopes: { '': ['money'] },
    usage: usage(kind),
    options: { key: { type: 'string' } },
    run: (ctx) => transfer(kind, ctx),
  }
}

export const depositCommand = transferCommand('deposit')
export const withdrawCommand = transferCommand('withdraw')

async function transfer(kind: Kind, ctx: FarmContext): Promise<number> {
  const [id, amount] = positionals(ctx, ['id', 'amount'], kind) as [string, string]
  if (!/^\d+$/.test(amount) || /^0+$/.test(amount)) {
    throw new UsageError(`AMOUNT must be a positive integer in base units, got "${amount}"`, kind)
  }
  const key = stringOption(ctx.values, 'key') ?? randomUUID()
  // Before the request: if its answer is lost, the operator still has the key to retry with.
  printError(`${kind} ${amount} ${kind === 'deposit' ? 'into' : 'from'} ${id}, Idempotency-Key ${key}`)
  let result: TransferResult
  try {
    result = await ctx.client.post<TransferResult>(`/admin/accounts/${encodeURIComponent(id)}/${PATHS[kind]}`, { amount }, { 'idempotency-key': key })
  } catch (err) {
    if (err instanceof FarmError && (err.status === undefined || err.status >= 500)) {
      throw new FarmError(`${err.message}\nit may or may not have been applied: run it again with --key ${key} (applied at most once)`, err.status, err.body)
    }
    throw err
  }
  if (ctx.json) {
    printJson(result)
    return 0
  }
  print(resultSentence(kind, result, key))
  return 0
}

function resultSentence(kind: Kind, r: TransferResult, key: string): string {
  if (!r.applied) return `already applied with Idempotency-Key ${key}: nothing changed; ${r.id}'s balance is ${r.balance}`
  const verb = kind === 'deposit' ? `deposited ${r.amount} into` : `withdrew ${r.amount} from`
  const settlement = r.settlementId === undefined ? '' : `; it crossed the settle threshold: settlement ${r.settlementId} requested`
  return `${verb} ${r.id}: balance now ${r.balance}${settlement}`
}
