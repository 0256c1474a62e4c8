// The page: draws what the worker reports and forwards what the person
// does. Nothing slow runs here (packets, crypto and the network live in
// the worker), so the page stays responsive while the client sends.
// window.sotto is the page's API for scripts and the browser test.

import qrcode from 'qrcode-generator'

const $ = (id) => document.getElementById(id)
const worker = new Worker('worker.js')
const waiting = new Map()
let next = 0

const state = { conn: 'not open', link: null, stats: {}, messages: [], statuses: {}, contact: null, errors: [] }

function command (cmd, ...args) {
  const id = ++next
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject })
    worker.postMessage({ id, cmd, args })
  })
}

const handlers = {
  conn (d) {
    state.conn = d.state
    const el = $('conn')
    el.textContent = d.state + (d.err ? ` (${d.err})` : '')
    el.className = d.state
    if (d.epoch) $('epoch').textContent = d.epoch
  },
  link (d) { state.link = d.connected },
  stats (d) {
    state.stats = d
    for (const k of ['payload', 'loop', 'drop', 'loopsReturned', 'loopsLost', 'pushFrames', 'pushMessages']) $(k).textContent = d[k]
    if (d.pushSlots > 0) $('padding').textContent = `${(100 * (1 - d.pushMessages / d.pushSlots)).toFixed(1)} %`
    if (d.epoch) $('epoch').textContent = d.epoch
    if (d.conn !== state.conn) handlers.conn({ state: d.conn, epoch: d.epoch })
  },
  message (d) {
    state.messages.push(d)
    const li = document.createElement('li')
    li.textContent = d.text
    const meta = document.createElement('span')
    meta.className = 'meta'
    meta.textContent = ` · ${new Date(d.received).toLocaleTimeString()}` + (d.sender ? ` · from ${d.sender.slice(0, 16)}…` : '')
    li.append(meta)
    $('messages').prepend(li)
  },
  status (d) {
    state.statuses[d.id] = d
    const li = document.querySelector(`li[data-id="${d.id}"]`)
    if (li) {
      li.querySelector('.meta').textContent = ` · ${d.state}` +
        (d.latencyMs != null ? ` in ${(d.latencyMs / 1000).toFixed(1)} s` : '') + (d.err ? ` (${d.err})` : '')
    }
  },
  error (d) { state.errors.push(d.err); $('error').textContent = d.err }
}

worker.onmessage = (e) => {
  const m = e.data
  if (m.event) {
    handlers[m.event]?.(m.data)
    return
  }
  const w = waiting.get(m.id)
  if (!w) return
  waiting.delete(m.id)
  if ('error' in m) w.reject(new Error(m.error))
  else w.resolve(m.result)
}

function showContact (c) {
  state.contact = c
  $('contact').textContent = c
  try {
    const qr = qrcode(0, 'L')
    qr.addData(c)
    qr.make()
    $('qr').innerHTML = qr.createSvgTag({ cellSize: 2, margin: 2, scalable: true })
  } catch (err) {
    $('qr').textContent = 'contact too long for a QR code'
  }
}

async function open (addr, pay) {
  $('error').textContent = ''
  const r = await command('open', addr ?? '', pay ?? '')
  $('addr').value = r.addr
  $('open').disabled = true
  localStorage.setItem('sotto.addr', r.addr)
  showContact(await command('contact', false))
  return r
}

async function send (to, text) {
  const id = await command('send', to, text)
  const li = document.createElement('li')
  li.dataset.id = id
  li.textContent = text
  const meta = document.createElement('span')
  meta.className = 'meta'
  meta.textContent = ' · queued'
  li.append(meta)
  $('sent').prepend(li)
  return id
}

const fail = (err) => { state.errors.push(String(err.message ?? err)); $('error').textContent = err.message ?? err }

$('open').onclick = () => open($('addr').value.trim()).catch(fail)
$('send').onclick = () => send($('to').value.trim(), $('text').value).then(() => { $('text').value = '' }).catch(fail)
$('forget').onclick = () => command('forget').then(() => location.reload()).catch(fail)

// The heartbeat shows the page's own thread is free.
let beats = 0
setInterval(() => { $('heartbeat').textContent = ++beats }, 100)

// A saved state reopens by itself: the same identity and contacts, and
// whatever arrived meanwhile is fetched.
const ready = (async () => {
  const params = new URLSearchParams(location.search)
  if (params.get('provider')) $('addr').value = params.get('provider')
  else if (localStorage.getItem('sotto.addr')) $('addr').value = localStorage.getItem('sotto.addr')
  if (await command('hasState')) {
    await open('').catch(fail)
    return 'reopened'
  }
  return 'fresh'
})()

window.sotto = { state, open, send, command, ready, beats: () => beats }
