#!/usr/bin/env node
// Kademlia DHT interop between kwaainet-edge (net/kad, `kwnode run` and `kwnode dht ...`) and
// js-libp2p @libp2p/kad-dht (kad-node.mjs), on 127.0.0.1 only (run by make check-interop).
//
//   node tests/interop/kad.mjs [<kwnode>]
//
// A swarm of js DHT servers (separate processes) is started and joined; the js-only checks
// run first (they need no C code), then, when <kwnode> has the `dht` command, the C checks
// of doc/interop.md ("Kademlia DHT"). Every check prints `ok` or `FAIL` with its detail; the
// last line is `kad: <n> passed, <m> failed`; exit status 1 on any failure, on the overall
// timeout (KAD_TIMEOUT_S, default 300) or on an unexpected error. Every process started is
// killed on every exit path (kadlib.mjs).
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { JsKad, killAll } from './kadlib.mjs'
import { cChecks } from './kad-c.mjs'

const kwnode = process.argv.slice(2).find((a) => !a.startsWith('--'))
const JS_NODES = 5
const timeoutS = +(process.env.KAD_TIMEOUT_S ?? 300)

let passed = 0
let failed = 0
export function check (ok, what, detail = '') {
  if (ok) { passed++; console.log(`ok   ${what}`) } else { failed++; console.log(`FAIL ${what} ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`) }
  return ok
}

const tmp = mkdtempSync(join(tmpdir(), 'kw-kad-'))
function finish (code) {
  killAll()
  rmSync(tmp, { recursive: true, force: true })
  process.exit(code)
}
setTimeout(() => {
  console.log(`FAIL overall timeout: ${timeoutS} s`)
  console.log(`kad: ${passed} passed, ${failed + 1} failed`)
  finish(1)
}, timeoutS * 1000).unref()

const rand = () => randomBytes(6).toString('hex')

// ---- the js swarm -----------------------------------------------------------------------
// A full mesh: every js node dials every other. js adds to its table only peers that
// connect to it (and list /ipfs/kad/1.0.0) or that answer one of its queries, and a js
// lookup only follows peers closer to the key than the peer that named them, so a sparse js
// swarm stays sparse and puts would reach fewer than k peers.
async function startJsSwarm (n) {
  const js = []
  for (let i = 0; i < n; i++) js.push(new JsKad(`js${i}`))
  await Promise.all(js.map((j) => j.ready()))
  for (let i = 1; i < n; i++) {
    for (let j = 0; j < i; j++) {
      const r = await js[i].req('connect', { addr: js[j].addr })
      if (!r.ok) throw new Error(`js${i} cannot dial js${j}: ${r.error}`)
    }
  }
  return js
}

async function jsChecks (js) {
  // A connected server enters the table (identify lists /ipfs/kad/1.0.0, ping answers).
  let sizes = []
  for (let t = 0; t < 100; t++) {
    sizes = (await Promise.all(js.map((j) => j.req('rt')))).map((r) => r.peers?.length ?? -1)
    if (sizes.every((n) => n === JS_NODES - 1)) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  check(sizes.every((n) => n === JS_NODES - 1), `js: every js server is in the other ${JS_NODES - 1} tables (sizes ${sizes.join(' ')})`)

  // /kwaai/ record sealed (kwaai.mjs) and put by one js node, got by another, replicated
  // into every datastore; an unsigned value is refused by every peer; a higher seq wins
  const key = `/kwaai/js-test/${rand()}`
  const value = `v-${rand()}`
  let r = await js[1].req('putKwaai', { key, value, seq: 1 })
  check(r.ok && r.stored >= 3, `js: js1 puts a signed ${key} (${r.stored} peers stored it)`, r)
  r = await js[4].req('get', { key })
  check(r.ok && r.kwaaiValue === value && r.kwaaiSeq === 1, 'js: js4 gets the value js1 put', r)
  const held = await Promise.all(js.map((j) => j.req('record', { key })))
  const holders = held.map((h, i) => h.found ? `js${i}` : null).filter(Boolean)
  check(holders.length === JS_NODES, `js: the record sits in every js datastore (${holders.join(' ')})`, held)
  r = await js[2].req('putKwaai', { key, value: `${value}-2`, seq: 2 })
  r = await js[3].req('get', { key })
  check(r.ok && r.kwaaiValue === `${value}-2` && r.kwaaiSeq === 2, 'js: a seq 2 record put by js2 replaces seq 1', r)
  const bad = `/kwaai/js-test/${rand()}`
  r = await js[1].req('put', { key: bad, value: 'unsigned' })
  const badHeld = await Promise.all(js.map((j, i) => i === 1 ? { found: false } : j.req('record', { key: bad })))
  check(r.ok && r.stored === 0 && badHeld.every((h) => !h.found), 'js: an unsigned /kwaai/ value is refused by every other js peer', { r, badHeld })

  // /pk/<multihash> put by js2, fetched by js3 and checked: the key's peer id owns the key
  const { peerIdFromString, peerIdFromPublicKey } = await import('@libp2p/peer-id')
  const { publicKeyFromProtobuf, publicKeyToProtobuf } = await import('@libp2p/crypto/keys')
  const id2 = peerIdFromString(js[2].peerId)
  const pkKey = Buffer.concat([Buffer.from('/pk/'), Buffer.from(id2.toMultihash().bytes)])
  const pub = publicKeyToProtobuf(id2.publicKey)
  r = await js[2].req('put', { keyHex: pkKey.toString('hex'), valueHex: Buffer.from(pub).toString('hex') })
  check(r.ok && r.stored >= 1, `js: js2 puts /pk/<own multihash> (${r.stored} peers stored it)`, r)
  r = await js[3].req('get', { keyHex: pkKey.toString('hex') })
  let same = false
  try { same = r.ok && peerIdFromPublicKey(publicKeyFromProtobuf(Buffer.from(r.valueHex, 'hex'))).equals(id2) } catch {}
  check(same, "js: js3 gets js2's /pk/ record and it hashes to js2's peer id", r)

  // provider records
  const mh = Buffer.concat([Buffer.from([0x12, 0x20]), randomBytes(32)]).toString('hex')
  r = await js[0].req('provide', { mhHex: mh })
  check(r.ok, `js: js0 provides a CID (${r.messages} requests)`, r)
  r = await js[4].req('findProviders', { mhHex: mh })
  check(r.ok && r.providers.some((p) => p.peerId === js[0].peerId), 'js: js4 finds js0 as provider', r)

  // find a peer never dialled: a newcomer that knows only js4 looks up js1
  const nj = new JsKad('js-new')
  await nj.ready()
  r = await nj.req('connect', { addr: js[4].addr })
  await nj.req('waitRt', { peer: js[4].peerId, timeoutMs: 10000 })
  const before = await nj.req('conns')
  r = await nj.req('findPeer', { peer: js[1].peerId, useCache: false })
  check(r.ok && r.found && r.addrs.length > 0 && !before.peers.includes(js[1].peerId),
    `js: a newcomer connected only to js4 finds js1 (${r.messages} requests, never connected before)`, r)

  // a js client-mode node is not added to a server's table; a js server dialling at the
  // same time is (the control)
  const cl = new JsKad('js-client', ['--client'])
  const sv = new JsKad('js-server')
  await Promise.all([cl.ready(), sv.ready()])
  await Promise.all([cl.req('connect', { addr: js[0].addr }), sv.req('connect', { addr: js[0].addr })])
  r = await js[0].req('waitRt', { peer: sv.peerId, timeoutMs: 10000 })
  const conns = await js[0].req('conns')
  const rt0 = await js[0].req('rt')
  check(r.ok && conns.peers.includes(cl.peerId) && !rt0.peers.includes(cl.peerId),
    'js: js0 adds a js server that dialled it and leaves out a connected js client', { r, conns, rt0 })
  await Promise.all([nj.stop(), cl.stop(), sv.stop()])
}

try {
  console.log(`kad: starting ${JS_NODES} js-libp2p kad-dht servers`)
  const js = await startJsSwarm(JS_NODES)
  await jsChecks(js)
  if (kwnode) await cChecks({ kwnode, js, tmp, check, rand })
  else console.log('kad: no kwnode given: C checks not run')
  console.log(`kad: ${passed} passed, ${failed} failed`)
  await Promise.all(js.map((j) => j.stop()))
  finish(failed ? 1 : 0)
} catch (e) {
  console.log(`FAIL unexpected error: ${e?.stack ?? e}`)
  console.log(`kad: ${passed} passed, ${failed + 1} failed`)
  finish(1)
}
