import type { AccountView } from './views.js'

/**
 * Within this share of a limit's own room counts as near it: of the credit
 * line (−minBalance) for minBalance, of the min..max range for maxBalance.
 */
const NEAR = 0.1

export type LimitFlag = 'at min' | 'at max' | 'near min' | 'near max'

/**
 * How close an account is to its limits. A packet from the account lowers its
 * balance and is refused (T04) below minBalance; a packet to it raises the
 * balance and is refused above maxBalance (credits in flight count too).
 */
export interface LimitState {
  /** balance − minBalance: how much the account can still send. */
  sendRoom: bigint
  /** maxBalance − balance − creditsInFlight: how much the farm can still forward to it; undefined without maxBalance. */
  receiveRoom: bigint | undefined
  /** Where the balance sits from minBalance (0) to maxBalance (1); undefined without maxBalance. */
  position: number | undefined
  flag: LimitFlag | undefined
}

function big(s: string | null | undefined): bigint | undefined {
  if (s === null || s === undefined || !/^-?\d+$/.test(s)) return undefined
  return BigInt(s)
}

/** undefined when the view's amounts are not integer strings (a farm this CLI does not understand). */
export function limitState(view: AccountView): LimitState | undefined {
  const balance = big(view.balance)
  const min = big(view.minBalance)
  if (balance === undefined || min === undefined) return undefined
  const max = big(view.maxBalance)
  const inFlight = big(view.creditsInFlight) ?? 0n
  const sendRoom = balance - min
  const receiveRoom = max === undefined ? undefined : max - balance - inFlight
  const position = max === undefined || max <= min ? undefined : ratio(balance + inFlight - min, max - min)
  return { sendRoom, receiveRoom, position, flag: flagOf(min, sendRoom, receiveRoom, position) }
}

/** a / b as a Number with 4 digits, exact enough for a percentage whatever the size of the amounts. */
function ratio(a: bigint, b: bigint): number {
  return Number((a * 10_000n) / b) / 10_000
}

/**
 * Near minBalance means nearly out of credit: an account the farm lends to
 * (minBalance < 0) with less than a tenth of its credit line left. A
 * prefunded account (minBalance ≥ 0) holding little of its range, say 2.55
 * of 1000, has simply spent or not been paid much yet: only 'at min' (it can
 * send nothing) is worth a word.
 */
function flagOf(min: bigint, sendRoom: bigint, receiveRoom: bigint | undefined, position: number | undefined): LimitFlag | undefined {
  if (sendRoom <= 0n) return 'at min'
  if (receiveRoom !== undefined && receiveRoom <= 0n) return 'at max'
  if (min < 0n && ratio(sendRoom, -min) < NEAR) return 'near min'
  if (position !== undefined && position >= 1 - NEAR) return 'near max'
  return undefined
}

/**
 * Balance 0 with minBalance 0: an account that was never funded (or only
 * receives). At its limit, but the normal state of a new prefunded account,
 * so inspect reports it as a note, not a problem.
 */
export function isUnfunded(view: AccountView): boolean {
  return view.balance === '0' && view.minBalance === '0'
}

/** A sentence saying what the flag means for traffic. */
export function limitSentence(view: AccountView, flag: LimitFlag): string {
  switch (flag) {
    case 'at min':
      if (isUnfunded(view)) return `${view.id} has no funds (balance 0, minBalance 0): packets from it are refused (T04) until it is credited`
      return `${view.id} is at its minBalance (${view.minBalance}): packets from it are refused (T04) until it is credited`
    case 'at max':
      return `${view.id} is at its maxBalance (${view.maxBalance ?? ''}): packets to it are refused (T04) until it is settled`
    case 'near min':
      return `${view.id} is near its minBalance (${view.minBalance})`
    case 'near max':
      return `${view.id} is near its maxBalance (${view.maxBalance ?? ''})`
  }
}
