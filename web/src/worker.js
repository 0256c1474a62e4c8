// The Web Worker: runs the Go client (sotto.wasm) beside the js-libp2p
// link, so the page's thread only draws. The page posts {id, cmd, args};
// the worker answers {id, result} or {id, error}, and posts {event, data}
// for what the client reports (conn, stats, message, status, link).

/* global Go, importScripts */
import * as net from './net.js'
import * as store from './store.js'

importScripts('wasm_exec.js')

const emit = (event, data) => postMessage({ event, data })

globalThis.sottoEmit = (kind, json) => emit(kind, JSON.parse(json))
globalThis.sottoStore = { load: store.load, save: store.save }
globalThis.sottoNet = {
  providerKey: net.providerKey,
  start: (identity) => net.start(identity, (connected) => emit('link', { connected }))
}

const ready = new Promise((resolve, reject) => {
  const go = new Go()
  go.exit = (code) => emit('error', { err: `the Go client exited (${code})` })
  const origEmit = globalThis.sottoEmit
  globalThis.sottoEmit = (kind, json) => {
    if (kind === 'ready') resolve()
    origEmit(kind, json)
  }
  WebAssembly.instantiateStreaming(fetch('sotto.wasm'), go.importObject)
    .then((r) => go.run(r.instance))
    .catch(reject)
})

// One running client per state: a second tab of the same origin would
// open the same identity and the two would take each other's messages
// from one mailbox (what OpenFileStore's lock prevents natively). The
// Web Lock is held until this worker ends (its tab closes).
let held = null
function holdLock () {
  if (held) return held
  held = new Promise((resolve, reject) => {
    if (!navigator.locks) { resolve(); return }
    navigator.locks.request('sotto-client', { ifAvailable: true }, (lock) => {
      if (!lock) {
        held = null
        reject(new Error('this client is open in another tab of this browser: one state serves one running client'))
        return
      }
      resolve()
      return new Promise(() => {})
    })
  })
  return held
}

// Commands the worker answers itself, without the Go client.
const local = {
  async hasState () { return (await store.load()) != null },
  async forget () { await store.clear(); return true }
}

onmessage = async (e) => {
  const { id, cmd, args } = e.data
  try {
    let result
    if (local[cmd]) {
      result = await local[cmd](...(args ?? []))
    } else {
      if (cmd === 'open') await holdLock()
      await ready
      const f = globalThis.sottoGo[cmd]
      if (typeof f !== 'function') throw new Error(`no command ${cmd}`)
      result = JSON.parse(await f(...(args ?? [])))
    }
    postMessage({ id, result })
  } catch (err) {
    postMessage({ id, error: String(err?.message ?? err) })
  }
}
