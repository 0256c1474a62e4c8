// The client's state in IndexedDB: one value, replaced whole (client.Store).
// save resolves once its transaction has committed, so what Go's Save
// promises (durable when it returns nil) holds.

const DB = 'sotto'
const STORE = 'state'
const KEY = 'client'

function db () {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1)
    req.onupgradeneeded = () => req.result.createObjectStore(STORE)
    req.onsuccess = () => resolve(req.result)
    req.onerror = () => reject(req.error)
  })
}

let opened
function get () {
  opened ??= db()
  return opened
}

export async function load () {
  const d = await get()
  return new Promise((resolve, reject) => {
    const req = d.transaction(STORE, 'readonly').objectStore(STORE).get(KEY)
    req.onsuccess = () => resolve(req.result ?? null)
    req.onerror = () => reject(req.error)
  })
}

export async function save (bytes) {
  const d = await get()
  return new Promise((resolve, reject) => {
    const tx = d.transaction(STORE, 'readwrite', { durability: 'strict' })
    tx.objectStore(STORE).put(bytes, KEY)
    tx.oncomplete = () => resolve()
    tx.onerror = () => reject(tx.error)
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'))
  })
}

export async function clear () {
  const d = await get()
  return new Promise((resolve, reject) => {
    const tx = d.transaction(STORE, 'readwrite')
    tx.objectStore(STORE).delete(KEY)
    tx.oncomplete = () => resolve()
    tx.onerror = () => reject(tx.error)
  })
}
