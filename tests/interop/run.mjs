#!/usr/bin/env node
// js-libp2p <-> kwaainet-edge interop test (make check-interop). Starts the C peer
// (tools/interop/kw_interop_peer) and the js peer (peer.mjs) on 127.0.0.1, drives both with
// the shared line protocol and checks, for each js key type (Ed25519, secp256k1, RSA):
// JS dials C and C dials JS, Noise + yamux come up, identify shows each side's protocols,
// ping works both ways, and `kwnode ping` answers against the js peer; then, once:
// 100 concurrent streams echoing 1 MiB each in both directions, 64 MiB on one stream each
// direction with matching SHA-256, and js closing / resetting / half-closing streams with
// the C side reporting each and its pool counters returning to their start values.
//
//   node tests/interop/run.mjs <kw_interop_peer> [<kwnode>] [--quick]
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const [cBin, kwnode] = process.argv.slice(2).filter((a) => !a.startsWith('--'))
const quick = process.argv.includes('--quick')
if (!cBin) {
  console.error('usage: run.mjs <kw_interop_peer> [<kwnode>] [--quick]')
  process.exit(2)
}

let passed = 0
let failed = 0
function check (ok, what, detail = '') {
  if (ok) { passed++; console.log(`ok   ${what}`) } else { failed++; console.log(`FAIL ${what} ${detail}`) }
  return ok
}

class Peer {
  constructor (name, cmd, args) {
    this.name = name
    this.proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    this.lines = []
    this.waiters = []
    this.events = []
    this.stderr = ''
    this.proc.stderr.on('data', (d) => { this.stderr += d.toString(); if (this.stderr.length > 200000) this.stderr = this.stderr.slice(-100000) })
    createInterface({ input: this.proc.stdout }).on('line', (l) => {
      if (l.startsWith('event ')) { this.events.push(l); return }
      this.lines.push(l)
      this.pump()
    })
    this.proc.on('exit', (code) => { this.exited = code; this.pump() })
  }

  pump () {
    while (this.waiters.length && (this.lines.length || this.exited !== undefined)) {
      const w = this.waiters.shift()
      if (this.lines.length) w.resolve(this.lines.shift())
      else w.reject(new Error(`${this.name} exited (${this.exited}): ${this.stderr.slice(-2000)}`))
    }
  }

  next (ms = 60000) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.name}: no reply within ${ms} ms; stderr: ${this.stderr.slice(-2000)}`)), ms)
      this.waiters.push({ resolve: (v) => { clearTimeout(t); resolve(v) }, reject: (e) => { clearTimeout(t); reject(e) } })
      this.pump()
    })
  }

  async start () {
    this.addrs = []
    for (;;) {
      const l = await this.next(120000)
      if (l.startsWith('peer-id ')) this.id = l.slice(8)
      else if (l.startsWith('listen ')) this.addrs.push(l.slice(7))
      else if (l === 'ready') return this
    }
  }

  async cmd (line, ms) {
    this.proc.stdin.write(line + '\n')
    const r = await this.next(ms)
    const [status, , ...rest] = r.split(' ')
    return { ok: status === 'ok', text: rest.join(' '), line: r }
  }

  async stop () {
    if (this.exited !== undefined) return
    this.proc.stdin.write('quit\n')
    await new Promise((resolve) => { const t = setTimeout(() => { this.proc.kill('SIGKILL'); resolve() }, 5000); this.proc.on('exit', () => { clearTimeout(t); resolve() }) })
  }
}

const startC = () => new Peer('C', cBin, ['--listen', '/ip4/127.0.0.1/tcp/0']).start()
const startJs = (key) => new Peer(`js-${key}`, process.execPath, [join(here, 'peer.mjs'), '--key', key]).start()

function hasAll (text, protos) {
  const got = new Set(text.split(' '))
  return protos.every((p) => got.has(p))
}
const C_PROTOS = ['/ipfs/id/1.0.0', '/ipfs/ping/1.0.0', '/kw-test/echo/1.0.0']
const JS_PROTOS = ['/ipfs/id/1.0.0', '/ipfs/ping/1.0.0', '/kw-test/echo/1.0.0']

async function runKwnodePing (target) {
  return new Promise((resolve) => {
    const p = spawn(kwnode, ['ping', target, '-n', '3', '-i', '50'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    p.stdout.on('data', (d) => { out += d })
    p.stderr.on('data', (d) => { out += d })
    const t = setTimeout(() => p.kill('SIGKILL'), 30000)
    p.on('exit', (code) => { clearTimeout(t); resolve({ code, out }) })
  })
}

async function keyRound (key) {
  const c = await startC()
  const js = await startJs(key)
  try {
    // JS dials C
    let r = await js.cmd(`dial ${c.addrs[0]}`)
    check(r.ok && r.text === c.id, `[${key}] js dials C: Noise + yamux up, peer id matches`, r.line)
    r = await js.cmd(`protocols ${c.id}`, 10000)
    check(r.ok && hasAll(r.text, C_PROTOS), `[${key}] js identify lists C's protocols`, r.line)
    r = await c.cmd(`protocols ${js.id}`, 10000)
    check(r.ok && hasAll(r.text, JS_PROTOS), `[${key}] C identify lists js's protocols`, r.line)
    if (key === 'ed25519') {
      // a protocol C registers while connected reaches js by identify push
      r = await c.cmd('register /kw-test/late/1.0.0')
      r = await js.cmd(`storeprotocols ${c.id} /kw-test/late/1.0.0`, 10000)
      check(r.ok && r.text.split(' ').includes('/kw-test/late/1.0.0'),
        `[${key}] identify push: js's peer store lists a protocol C registered later`, r.line)
    }
    r = await js.cmd(`ping ${c.id} 3`)
    check(r.ok && r.text.split(' ').length === 3, `[${key}] js pings C`, r.line)
    r = await c.cmd(`ping ${js.id} 3`)
    check(r.ok && r.text.split(' ').length === 3, `[${key}] C pings js over the js-dialed connection`, r.line)
    r = await js.cmd(`hangup ${c.id}`)
    // C dials JS
    r = await c.cmd(`dial ${js.addrs[0]}`)
    check(r.ok && r.text === js.id, `[${key}] C dials js (/p2p/ id checked): Noise + yamux up`, r.line)
    r = await c.cmd(`protocols ${js.id}`, 10000)
    check(r.ok && hasAll(r.text, JS_PROTOS), `[${key}] C identify lists js's protocols (C dialed)`, r.line)
    r = await js.cmd(`protocols ${c.id}`, 10000)
    check(r.ok && hasAll(r.text, C_PROTOS), `[${key}] js identify lists C's protocols (C dialed)`, r.line)
    r = await c.cmd(`ping ${js.id} 3`)
    check(r.ok && r.text.split(' ').length === 3, `[${key}] C pings js`, r.line)
    r = await js.cmd(`ping ${c.id} 3`)
    check(r.ok && r.text.split(' ').length === 3, `[${key}] js pings C over the C-dialed connection`, r.line)
    if (kwnode) {
      const k = await runKwnodePing(js.addrs[0])
      check(k.code === 0 && (k.out.match(/bytes from .* time=/g) || []).length === 3,
        `[${key}] kwnode ping against the js peer`, k.out)
    }
    if (key === 'ed25519') await bulkRound(c, js)
  } finally {
    await js.stop()
    await c.stop()
  }
}

async function bulkRound (c, js) {
  const streams = quick ? 10 : 100
  const big = quick ? 4 << 20 : 64 << 20
  let r = await c.cmd('wait 200')
  r = await c.cmd('stats')
  const before = /pools=(\d+)/.exec(r.text)?.[1]
  r = await c.cmd(`echo ${js.id} ${streams} 1048576`, 300000)
  check(r.ok, `C -> js: ${streams} concurrent streams echo 1 MiB each, SHA-256 match`, r.line)
  r = await js.cmd(`echo ${c.id} ${streams} 1048576`, 300000)
  check(r.ok, `js -> C: ${streams} concurrent streams echo 1 MiB each, SHA-256 match`, r.line)
  r = await c.cmd(`bulk ${js.id} ${big}`, 300000)
  let [a, b] = r.text.split(' ')
  check(r.ok && a === b, `C -> js: ${big >> 20} MiB on one stream each way, SHA-256 ${a?.slice(0, 16)} both sides`, r.line)
  r = await js.cmd(`bulk ${c.id} ${big}`, 300000)
  ;[a, b] = r.text.split(' ')
  check(r.ok && a === b, `js -> C: ${big >> 20} MiB on one stream each way, SHA-256 ${a?.slice(0, 16)} both sides`, r.line)

  for (const kind of ['halfclose', 'close', 'reset']) {
    c.events = []
    r = await js.cmd(`${kind} ${c.id}`)
    // give the C side a moment to see the final frame
    for (let i = 0; i < 50 && !c.events.some((e) => /(close|reset)$/.test(e)); i++) await new Promise((resolve) => setTimeout(resolve, 20))
    const ev = c.events.join(', ')
    const want = kind === 'reset' ? /reset$/ : /close$/
    const last = c.events.filter((e) => /(close|reset|[a-z ]+)$/.test(e)).pop() ?? ''
    check(r.ok && want.test(last) && (kind === 'reset' || c.events.some((e) => e.endsWith(' eof'))),
      `js ${kind} of a stream: C reports ${kind === 'reset' ? 'reset' : 'eof then close'}`, `${r.line} events: ${ev}`)
  }
  await new Promise((resolve) => setTimeout(resolve, 200))
  // js's identify push runs on its own schedule; let an in-flight push stream finish
  let after
  for (let i = 0; i < 10 && after !== before; i++) {
    r = await c.cmd('wait 200')
    r = await c.cmd('stats')
    after = /pools=(\d+)/.exec(r.text)?.[1]
  }
  check(before !== undefined && before === after, `C pool counters back to their start value (${before} -> ${after})`,
    `${r.line}\n${c.stderr.split('\n').filter((l) => l.startsWith('stats:')).slice(-12).join('\n')}`)
}

const keys = ['ed25519', 'secp256k1', 'rsa']
try {
  for (const k of keys) {
    try {
      await keyRound(k)
    } catch (e) {
      check(false, `[${k}] round`, e.message)
    }
  }
} finally {
  console.log(`interop: ${passed} passed, ${failed} failed`)
  process.exit(failed ? 1 : 0)
}
