import { type FarmCommand, positionals, print, printJson } from '../command.js'
import { money } from '../format.js'
import type { AccountView } from '../views.js'
import { accountFields } from './accounts.js'

const USAGE = `Usage: ilp-farm balance ID

The account's balance (GET /admin/accounts/ID), in base units and in asset units,
with its limits and how much it can still send and receive. A positive balance is
what the farm owes the account holder; a negative one, what the holder owes the farm.
`

export const balanceCommand: FarmCommand = {
  name: 'balance',
  summary: ['balance ID', "an account's balance, limits and room left"],
  scopes: { '': ['read'] },
  usage: USAGE,
  async run(ctx) {
    const [id] = positionals(ctx, ['id'], 'balance')
    const view = await ctx.client.get<AccountView>(`/admin/accounts/${encodeURIComponent(id!)}`)
    if (ctx.json) {
      printJson(view)
      return 0
    }
    print(`${view.id} (${view.relation}): ${balanceSentence(view)}`)
    print(accountFields(view))
    return 0
  },
}

/** "the farm owes alice 250 (0.000250 USD)", the sign spelled out. */
export function balanceSentence(view: AccountView): string {
  const asset = { assetCode: view.assetCode, assetScale: view.assetScale }
  if (view.balance === '0') return 'balance 0, nothing owed either way'
  if (view.balance.startsWith('-')) return `balance ${view.balance}: ${view.id} owes the farm ${money(view.balance.slice(1), asset)}`
  return `balance ${view.balance}: the farm owes ${view.id} ${money(view.balance, asset)}`
}
