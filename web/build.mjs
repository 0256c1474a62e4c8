// Builds dist/: the page and the worker bundled by esbuild, Go's
// wasm_exec.js, and the client compiled to WebAssembly.
//   node build.mjs [OUTDIR]     (needs npm ci in web/, and go; OUTDIR defaults to web/dist)
import { build } from 'esbuild'
import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdirSync } from 'node:fs'
import { join, dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const dist = process.argv[2] ? resolve(process.argv[2]) : join(here, 'dist')
mkdirSync(dist, { recursive: true })

const common = { bundle: true, format: 'iife', target: 'es2022', minify: true, sourcemap: false, logLevel: 'warning' }
await build({ ...common, entryPoints: [join(here, 'src/page.js')], outfile: join(dist, 'page.js') })
await build({ ...common, entryPoints: [join(here, 'src/worker.js')], outfile: join(dist, 'worker.js') })
copyFileSync(join(here, 'index.html'), join(dist, 'index.html'))

const goroot = execFileSync('go', ['env', 'GOROOT'], { encoding: 'utf8' }).trim()
copyFileSync(join(goroot, 'lib/wasm/wasm_exec.js'), join(dist, 'wasm_exec.js'))
execFileSync('go', ['build', '-trimpath', '-o', join(dist, 'sotto.wasm'), './web/wasm'], {
  cwd: join(here, '..'),
  env: { ...process.env, GOOS: 'js', GOARCH: 'wasm' },
  stdio: 'inherit'
})
console.log(`built ${dist}`)
