// The browser tests' hands: playwright-core driving a Chromium already
// installed (Debian's), headless, for the Go tests in web/browser_test.go.
//
//   node test/pw-driver.mjs CHROMIUM
//
// It reads one JSON command a line on stdin and answers each on stdout with
// one JSON line carrying the command's id; commands run concurrently.
//
//   {"id":1,"op":"newPage","url":"http://127.0.0.1:1234/"} -> {"id":1,"value":PAGE}
//   {"id":2,"op":"evaluate","page":PAGE,"expr":"sotto.ready"} -> {"id":2,"value":...}
//   {"id":3,"op":"screenshot","page":PAGE,"path":"/tmp/x.png"} -> {"id":3,"value":null}
//   {"id":4,"op":"closePage","page":PAGE}                      -> {"id":4,"value":null}
//   a failure                                                   -> {"id":N,"error":"..."}
//
// "evaluate" evaluates a JavaScript expression in the page, awaits it when
// it is a promise, and answers its value as JSON (undefined as null). All
// pages share one browser context, as tabs of one profile do: an origin's
// IndexedDB and Web Locks outlive its tab and are seen by its other tabs,
// while two origins keep theirs apart. Uncaught page errors and console
// errors go to stderr. At the end of stdin the browser closes and the
// driver exits.
import { chromium } from 'playwright-core'
import { createInterface } from 'node:readline'

const executablePath = process.argv[2]
if (!executablePath) {
  console.error('usage: node pw-driver.mjs CHROMIUM')
  process.exit(2)
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  chromiumSandbox: false,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage']
})
const context = await browser.newContext()
const pages = new Map()
let next = 1

function page (id) {
  const p = pages.get(id)
  if (!p) throw new Error(`no page ${id}`)
  return p
}

const ops = {
  async newPage ({ url }) {
    const p = await context.newPage()
    const id = next++
    pages.set(id, p)
    p.on('pageerror', (err) => console.error(`page ${id}: uncaught: ${err.message}`))
    p.on('console', (msg) => {
      if (msg.type() === 'error') console.error(`page ${id}: console: ${msg.text()}`)
    })
    p.on('close', () => pages.delete(id))
    await p.goto(url, { waitUntil: 'load' })
    return id
  },
  async evaluate ({ page: id, expr }) {
    return await page(id).evaluate(expr)
  },
  async screenshot ({ page: id, path }) {
    await page(id).screenshot({ path, fullPage: true, type: 'png' })
    return null
  },
  async closePage ({ page: id }) {
    await page(id).close()
    return null
  },
  async version () {
    return browser.version()
  }
}

function reply (msg) {
  process.stdout.write(JSON.stringify(msg) + '\n')
}

async function handle (line) {
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch (err) {
    console.error(`pw-driver: a command that is not JSON: ${err.message}`)
    return
  }
  try {
    const op = ops[cmd.op]
    if (!op) throw new Error(`unknown op ${JSON.stringify(cmd.op)}`)
    const value = await op(cmd)
    reply({ id: cmd.id, value: value === undefined ? null : value })
  } catch (err) {
    reply({ id: cmd.id, error: String(err && err.message ? err.message : err) })
  }
}

const pending = new Set()
for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (line.trim() === '') continue
  const h = handle(line)
  pending.add(h)
  h.finally(() => pending.delete(h))
}
await Promise.race([Promise.allSettled(pending), new Promise((resolve) => setTimeout(resolve, 5000))])
await browser.close()
process.exit(0)
