#!/usr/bin/env node
// js-libp2p Kademlia DHT peer(s) for the kwaainet-edge DHT interop test (kad.mjs) and the kad
// benchmark (tools/bench/bench_kad_swarm.sh). 127.0.0.1 only.
//
//   node kad-node.mjs [--nodes N] [--client] [--kwaai strict|permissive] [--no-self-query] [--quiet]
//
// Each node: TCP + Noise + yamux + identify + ping and @libp2p/kad-dht in SERVER mode
// (clientMode: false; --client makes every node a DHT client instead), an in-memory datastore
// the driver can inspect, and `peerInfoMapper: passthroughMapper`, because kad-dht's default
// mapper drops private and loopback addresses and no 127.0.0.1 peer would ever enter a table.
// A peer enters a js routing table when identify lists /ipfs/kad/1.0.0 and it answers a ping.
// --nodes N runs N independent libp2p nodes in this one Node.js process (the benchmark uses
// it to keep 100 nodes affordable); commands pick one with "node": <index>, default 0.
//
// /kwaai/ records: js kad-dht refuses keys of a namespace it has no validator for, so every
// node registers a validator and a selector for `kwaai`, written from the envelope format in
// doc/net-kad.md (kwaai.mjs). --kwaai permissive accepts any value (selector: first).
//
// Control protocol: one JSON object per line on stdin, one JSON reply line per request on
// stdout, matched by "id" (requests run concurrently). At start, one line per node
//   {"event":"node","node":i,"peerId":"12D3...","addrs":["/ip4/127.0.0.1/tcp/N/p2p/12D3..."]}
// then {"event":"ready","nodes":N}. Replies: {"id":..,"ok":true,...} or
// {"id":..,"ok":false,"error":"..."}. Keys are given as "key" (UTF-8) or "keyHex"; values as
// "value" or "valueHex"; content as "cid" (string) or "mhHex" (a multihash, taken as a CIDv1
// raw). Every DHT operation reports "ms" (wall time) and "messages" (kad requests this node
// sent for it: SEND_QUERY events).
//
//   info                                    peerId addrs mode rt (routing table size)
//   connect {addr}                          dial; peerId
//   waitRt {peer, timeoutMs}                until peer is in this node's routing table; ms
//   put {key, value}                        stored: peers that echoed the record
//   putKwaai {key, value, seq?, expiryMs?}  put of a /kwaai/ envelope this node signs
//   get {key}                               valueHex value (UTF-8 when printable) from;
//                                           for /kwaai/ also kwaaiValue kwaaiSeq
//   provide {cid}                           (also stores us as provider locally)
//   findProviders {cid}                     providers: [{peerId, addrs}]
//   findPeer {peer, useCache?}              found addrs (useCache false: always a lookup)
//   getClosestPeers {key|peer}              peers: [peerId...]
//   rt                                      peers: the routing table's peer ids
//   record {key}                            the local datastore: found valueHex timeReceived
//   localProviders {cid}                    peers this node stores as providers of cid
//   datastore                               keys: every datastore key
//   conns                                   peers this node is connected to
//   stats                                   rssKiB (whole process) heapKiB rt conns
//   hangup {peer}, quit
import { createInterface } from 'node:readline'
import { performance } from 'node:perf_hooks'

if (typeof Promise.withResolvers !== 'function') {
  // libp2p 3.x targets Node 22; this is the only piece Node 20 lacks (as in peer.mjs).
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { kadDHT, passthroughMapper } = await import('@libp2p/kad-dht')
const { generateKeyPair } = await import('@libp2p/crypto/keys')
const { peerIdFromString } = await import('@libp2p/peer-id')
const { multiaddr } = await import('@multiformats/multiaddr')
const { MemoryDatastore } = await import('datastore-core')
const { CID } = await import('multiformats/cid')
const Digest = await import('multiformats/hashes/digest')
const { kwaaiValidate, kwaaiSelect, kwaaiSeal, decodeEnvelope, permissiveValidate, permissiveSelect } = await import('./kwaai.mjs')

const args = process.argv.slice(2)
let nNodes = 1
let clientMode = false
let kwaaiMode = 'strict'
let quiet = false
let selfQuery = true
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--nodes') nNodes = parseInt(args[++i], 10)
  else if (args[i] === '--client') clientMode = true
  else if (args[i] === '--kwaai') kwaaiMode = args[++i]
  else if (args[i] === '--quiet') quiet = true
  else if (args[i] === '--no-self-query') selfQuery = false
  else { console.error(`kad-node.mjs: unknown argument ${args[i]}`); process.exit(2) }
}
if (!(nNodes >= 1) || !['strict', 'permissive'].includes(kwaaiMode)) {
  console.error('usage: kad-node.mjs [--nodes N] [--client] [--kwaai strict|permissive] [--no-self-query] [--quiet]')
  process.exit(2)
}

function out (obj) { process.stdout.write(JSON.stringify(obj) + '\n') }
const hex = (b) => Buffer.from(b).toString('hex')
const unhex = (s) => new Uint8Array(Buffer.from(s, 'hex'))
const utf8 = (b) => { const s = Buffer.from(b).toString('utf8'); return /^[\x20-\x7e]*$/.test(s) ? s : undefined }

async function createNode () {
  const datastore = new MemoryDatastore()
  const privateKey = await generateKeyPair('Ed25519')
  const node = await createLibp2p({
    privateKey,
    datastore,
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({
        clientMode,
        peerInfoMapper: passthroughMapper,
        validators: { kwaai: kwaaiMode === 'strict' ? (k, v) => kwaaiValidate(k, v) : permissiveValidate },
        selectors: { kwaai: kwaaiMode === 'strict' ? kwaaiSelect : permissiveSelect },
        // a lone first node must answer queries (and the driver's puts) before it has peers
        allowQueryWithZeroPeers: true,
        // --no-self-query: the table holds only peers the driver connects (memory figures)
        ...(selfQuery ? {} : { querySelfInterval: 2 ** 31 - 1, initialQuerySelfInterval: 2 ** 31 - 1 })
      })
    },
    connectionManager: {
      // swarms of 100 on one address reconnect quickly: no inbound rate limit on 127.0.0.1
      inboundConnectionThreshold: 1e9,
      maxIncomingPendingConnections: 1000,
      maxConnections: 1000
    },
    connectionMonitor: { enabled: false }
  })
  return { node, datastore, privateKey, dht: node.services.dht }
}

const nodes = []
for (let i = 0; i < nNodes; i++) {
  const n = await createNode()
  nodes.push(n)
  out({ event: 'node', node: i, peerId: n.node.peerId.toString(), addrs: n.node.getMultiaddrs().map(String) })
}
out({ event: 'ready', nodes: nNodes })

function keyOf (req) {
  if (req.keyHex != null) return unhex(req.keyHex)
  if (req.key != null) return new TextEncoder().encode(req.key)
  throw new Error('missing key or keyHex')
}
function valueOf (req) {
  if (req.valueHex != null) return unhex(req.valueHex)
  if (req.value != null) return new TextEncoder().encode(req.value)
  throw new Error('missing value or valueHex')
}
function cidOf (req) {
  if (req.cid != null) return CID.parse(req.cid)
  if (req.mhHex != null) return CID.createV1(0x55, Digest.decode(unhex(req.mhHex)))
  throw new Error('missing cid or mhHex')
}

// Runs one DHT query, counting the requests it sends; fn(event) sees every event.
async function query (iter, fn) {
  const t0 = performance.now()
  let messages = 0
  const errors = []
  for await (const ev of iter) {
    if (ev.name === 'SEND_QUERY') messages++
    if (ev.name === 'QUERY_ERROR' && errors.length < 4) errors.push(`${ev.from}: ${ev.error?.message ?? ev.error}`)
    fn?.(ev)
  }
  return { ms: +(performance.now() - t0).toFixed(2), messages, errors }
}

// Decodes a Record protobuf (go-libp2p-record pb/record.proto: key 1, value 2,
// timeReceived 5), the form kad-dht keeps in its datastore, by hand.
function decodeRecord (buf) {
  const rec = {}
  let i = 0
  const varint = () => {
    let v = 0n; let s = 0n
    for (;;) {
      if (i >= buf.length) throw new Error('truncated varint')
      const b = buf[i++]; v |= BigInt(b & 0x7f) << s; s += 7n
      if (!(b & 0x80)) return v
    }
  }
  while (i < buf.length) {
    const tag = Number(varint())
    if ((tag & 7) === 2) {
      const len = Number(varint())
      if (i + len > buf.length) throw new Error('truncated field')
      const f = buf.subarray(i, i + len); i += len
      if (tag >> 3 === 1) rec.key = f
      else if (tag >> 3 === 2) rec.value = f
      else if (tag >> 3 === 5) rec.timeReceived = Buffer.from(f).toString('utf8')
    } else if ((tag & 7) === 0) varint()
    else throw new Error(`unexpected wire type ${tag & 7}`)
  }
  return rec
}

const ops = {
  async info (n) {
    return { peerId: n.node.peerId.toString(), addrs: n.node.getMultiaddrs().map(String), mode: n.dht.getMode(), rt: n.dht.routingTable.size }
  },
  async connect (n, req) {
    const conn = await n.node.dial(multiaddr(req.addr), { signal: AbortSignal.timeout(req.timeoutMs ?? 20000) })
    return { peerId: conn.remotePeer.toString() }
  },
  async waitRt (n, req) {
    const t0 = performance.now()
    const deadline = Date.now() + (req.timeoutMs ?? 10000)
    for (;;) {
      if (await n.dht.routingTable.find(peerIdFromString(req.peer))) return { ms: +(performance.now() - t0).toFixed(1) }
      if (Date.now() > deadline) throw new Error(`${req.peer} not in the routing table after ${req.timeoutMs ?? 10000} ms`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  },
  async put (n, req) {
    const key = keyOf(req)
    const value = valueOf(req)
    let stored = 0
    const r = await query(n.dht.put(key, value, { signal: AbortSignal.timeout(req.timeoutMs ?? 30000) }), (ev) => {
      if (ev.name === 'PEER_RESPONSE' && ev.messageName === 'PUT_VALUE') stored++
    })
    return { stored, ...r }
  },
  // seals value in a /kwaai/ envelope signed by this node (seq, expiryMs: default 1, now + 1 h)
  async putKwaai (n, req) {
    const key = keyOf(req)
    const env = await kwaaiSeal(n.privateKey, key, valueOf(req), BigInt(req.seq ?? 1), BigInt(req.expiryMs ?? Date.now() + 3600000))
    return ops.put(n, { ...req, keyHex: hex(key), valueHex: hex(env) })
  },
  async get (n, req) {
    const key = keyOf(req)
    let best
    let from
    const r = await query(n.dht.get(key, { signal: AbortSignal.timeout(req.timeoutMs ?? 30000) }), (ev) => {
      if (ev.name === 'VALUE') { best = ev.value; from = ev.from?.toString() }
    })
    if (best == null) throw new Error(`no value found (${r.messages} requests; ${r.errors.join('; ')})`)
    const res = { valueHex: hex(best), value: utf8(best), from, ...r }
    if (Buffer.from(key).toString('latin1').startsWith('/kwaai/')) {
      // the application value inside the envelope (already validated by kad-dht)
      try { const e = decodeEnvelope(best); res.kwaaiValue = utf8(e.value) ?? hex(e.value); res.kwaaiSeq = Number(e.seq) } catch {}
    }
    return res
  },
  async provide (n, req) {
    const cid = cidOf(req)
    const r = await query(n.dht.provide(cid, { signal: AbortSignal.timeout(req.timeoutMs ?? 30000) }))
    return { cid: cid.toString(), ...r }
  },
  async findProviders (n, req) {
    const cid = cidOf(req)
    const providers = new Map()
    const r = await query(n.dht.findProviders(cid, { signal: AbortSignal.timeout(req.timeoutMs ?? 30000) }), (ev) => {
      if (ev.name === 'PROVIDER') {
        for (const p of ev.providers) providers.set(p.id.toString(), p.multiaddrs.map(String))
      }
    })
    return { providers: [...providers].map(([peerId, addrs]) => ({ peerId, addrs })), ...r }
  },
  async findPeer (n, req) {
    const id = peerIdFromString(req.peer)
    let found
    const r = await query(n.dht.findPeer(id, { signal: AbortSignal.timeout(req.timeoutMs ?? 30000), useCache: req.useCache }), (ev) => {
      if (ev.name === 'FINAL_PEER' && ev.peer.id.equals(id)) found = ev.peer.multiaddrs.map(String)
    })
    return { found: found != null, addrs: found ?? [], ...r }
  },
  async getClosestPeers (n, req) {
    const key = req.peer != null ? peerIdFromString(req.peer).toMultihash().bytes : keyOf(req)
    const peers = []
    const r = await query(n.dht.getClosestPeers(key, { signal: AbortSignal.timeout(req.timeoutMs ?? 30000) }), (ev) => {
      if (ev.name === 'FINAL_PEER') peers.push(ev.peer.id.toString())
    })
    return { peers, ...r }
  },
  async rt (n) {
    return { peers: [...n.dht.routingTable.kb.toIterable()].map((p) => p.peerId.toString()) }
  },
  async record (n, req) {
    // kad-dht keeps records under /dht/record/<base32 key>; compare the decoded key instead
    // of rebuilding the datastore key, so this does not depend on the key encoding.
    const key = keyOf(req)
    for await (const { value } of n.datastore.query({ prefix: '/dht/record' })) {
      const rec = decodeRecord(value)
      if (rec.key && Buffer.compare(Buffer.from(rec.key), Buffer.from(key)) === 0) {
        return { found: true, valueHex: hex(rec.value ?? new Uint8Array()), value: utf8(rec.value ?? new Uint8Array()), timeReceived: rec.timeReceived }
      }
    }
    return { found: false }
  },
  async localProviders (n, req) {
    const peers = await n.dht.providers.getProviders(cidOf(req))
    return { peers: peers.map(String) }
  },
  async datastore (n) {
    const keys = []
    for await (const k of n.datastore.queryKeys({})) keys.push(k.toString())
    return { keys }
  },
  async conns (n) {
    return { peers: [...new Set(n.node.getConnections().map((c) => c.remotePeer.toString()))] }
  },
  async stats (n) {
    const m = process.memoryUsage()
    return { rssKiB: Math.round(m.rss / 1024), heapKiB: Math.round(m.heapUsed / 1024), rt: n.dht.routingTable.size, conns: n.node.getConnections().length }
  },
  async hangup (n, req) {
    await n.node.hangUp(peerIdFromString(req.peer))
    return {}
  }
}

async function quit () {
  await Promise.allSettled(nodes.map((n) => n.node.stop()))
  process.exit(0)
}

createInterface({ input: process.stdin }).on('line', async (line) => {
  if (!line.trim()) return
  let req
  try { req = JSON.parse(line) } catch { out({ ok: false, error: `not JSON: ${line.slice(0, 80)}` }); return }
  if (req.op === 'quit') { out({ id: req.id, ok: true }); await quit(); return }
  const fn = ops[req.op]
  const n = nodes[req.node ?? 0]
  if (!fn || !n) { out({ id: req.id, ok: false, error: fn ? `no node ${req.node}` : `unknown op ${req.op}` }); return }
  try {
    out({ id: req.id, ok: true, ...(await fn(n, req)) })
  } catch (e) {
    out({ id: req.id, ok: false, error: e?.message ?? String(e) })
  }
}).on('close', quit)

process.on('SIGTERM', quit)
if (!quiet) process.on('unhandledRejection', (e) => console.error('kad-node: unhandled rejection:', e))
