import { execFile } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * The Chromium binary the browser tests drive: CHROMIUM_PATH when set, else
 * Debian's `/usr/bin/chromium` (or `chromium-browser`). When there is none,
 * Debian's `chromium` package is installed with apt-get (through `sudo -n`
 * when not root), so `npm ci && npm test` needs no other step.
 *
 * Every test file and vitest worker may ask at once: the check and the
 * install run under one `flock` on a file in the temp folder, so the first
 * caller installs and the others wait, then find the binary. The kernel drops
 * the lock when its holder dies, so a killed run leaves nothing to clean up.
 */
export const CHROMIUM_CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser']

/** Long enough for apt-get update and a first download of chromium on a slow mirror. */
export const CHROMIUM_INSTALL_TIMEOUT_MS = 15 * 60_000

const LOCK_FILE = join(tmpdir(), 'ilp-farm-chromium-install.lock')

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

function found(): string | undefined {
  return CHROMIUM_CANDIDATES.find(executable)
}

function run(file: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { maxBuffer: 64 * 1024 * 1024, timeout: CHROMIUM_INSTALL_TIMEOUT_MS }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 127
      // Not an exit code: flock missing (ENOENT) or killed at the timeout; say which.
      const why = err !== null && typeof err.code !== 'number' ? `\n${err.message}` : ''
      resolve({ code, output: `${stdout}${stderr}${why}` })
    })
  })
}

/**
 * The shell script run under the lock: look again (another process may have
 * installed it while this one waited), else apt-get update and install.
 * No recommends: they pull in systemd, avahi and printer tools; chromium's
 * own dependencies bring a font through fontconfig, which is all the
 * headless tests need.
 */
const INSTALL_SCRIPT = `
set -eu
for p in ${CHROMIUM_CANDIDATES.join(' ')}; do [ -x "$p" ] && exit 0; done
command -v apt-get >/dev/null 2>&1 || { echo "apt-get not found: not a Debian-like system"; exit 3; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "not root and no sudo"; exit 4; }
  SUDO="sudo -n"
fi
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium
`

let pending: Promise<string> | undefined

/** Resolves with the path of a Chromium binary, installing Debian's package first when there is none. */
export function ensureChromium(): Promise<string> {
  pending ??= locate()
  return pending
}

async function locate(): Promise<string> {
  const configured = process.env.CHROMIUM_PATH
  if (configured !== undefined && configured !== '') {
    if (!executable(configured)) throw new Error(`CHROMIUM_PATH=${configured} is not an executable file`)
    return configured
  }
  const present = found()
  if (present !== undefined) return present

  const started = Date.now()
  process.stderr.write(`no chromium at ${CHROMIUM_CANDIDATES.join(' or ')}: installing Debian's chromium with apt-get (once, under ${LOCK_FILE})\n`)
  const { code, output } = await run('flock', [LOCK_FILE, 'sh', '-c', INSTALL_SCRIPT])
  const installed = found()
  if (code === 0 && installed !== undefined) {
    process.stderr.write(`chromium ready at ${installed} after ${((Date.now() - started) / 1000).toFixed(1)} s\n`)
    return installed
  }
  throw new Error(
    `no chromium at ${CHROMIUM_CANDIDATES.join(' or ')}, and installing Debian's chromium failed (exit ${code}).\n` +
      `Install it (apt-get install chromium, as root) or set CHROMIUM_PATH to a Chromium binary.\n` +
      `--- output ---\n${output.slice(-4000)}`,
  )
}
