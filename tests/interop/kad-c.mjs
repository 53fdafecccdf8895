// The C half of tests/interop/kad.mjs: `kwnode run` DHT nodes and the `kwnode dht` command
// against the js-libp2p kad-dht swarm (doc/interop.md, "Kademlia DHT"). C commands run
// either through a running node's control socket (-d <its data dir>) or as a transient node
// (fresh data dir, --bootstrap <one js node>), which joins the DHT in client mode.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Proc, JsKad, run } from './kadlib.mjs'

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

export async function cChecks ({ kwnode, js, tmp, check, rand }) {
  const help = await run(kwnode, ['dht', '--help'], 10000)
  if (help.code !== 0) {
    console.log(`kad: ${kwnode} has no dht command: C checks not run`)
    return
  }
  const { peerIdFromString, peerIdFromPublicKey } = await import('@libp2p/peer-id')
  const { publicKeyFromProtobuf, publicKeyToProtobuf } = await import('@libp2p/crypto/keys')
  const { CID } = await import('multiformats/cid')
  const Digest = await import('multiformats/hashes/digest')
  const { randomBytes } = await import('node:crypto')

  // Every process here dials from 127.0.0.1: lift the per-address inbound limits
  // (doc/config.md), as tests/build/test_dht_swarm.sh does.
  const conf = join(tmp, 'node.conf')
  writeFileSync(conf, 'conns_per_ip = 256\nconns_per_subnet = 256\nhandshakes_per_ip = 64\nhandshakes_per_subnet = 64\n')
  const dirs = new Set()
  const dir = (name) => { const d = join(tmp, name); if (!dirs.has(d)) { mkdirSync(d, { mode: 0o700 }); dirs.add(d) } return d }

  async function startC (name, extra) {
    const p = new Proc(name, kwnode, ['run', '-c', conf, '-d', dir(name), '-l', '/ip4/127.0.0.1/tcp/0', '-L', '2', ...extra])
    const [, addr] = await p.waitFor(/^listen (\S+)/)
    const [, id] = await p.waitFor(/^peer-id (\S+)/)
    p.addr = addr.includes('/p2p/') ? addr : `${addr}/p2p/${id}`
    p.peerId = id
    p.dir = dir(name)
    return p
  }
  // kwnode dht through node `via` (a Proc: its control socket) or as a transient node
  // bootstrapping from js node `boot`.
  const dht = (target, ...a) => {
    const base = target.dir ? ['dht', '-d', target.dir] : ['dht', '-d', dir(`t-${rand()}`), '-c', conf, '-b', target.addr]
    return run(kwnode, [...base, ...a], 60000)
  }
  const show = (r) => `exit ${r.code}: ${(r.out + r.err).trim().slice(0, 600)}`
  async function poll (fn, ms = 10000) {
    const end = Date.now() + ms
    for (;;) {
      const v = await fn()
      if (v || Date.now() > end) return v
      await sleep(100)
    }
  }

  // ---- C nodes join the js swarm -------------------------------------------------------
  const c0 = await startC('c0', ['-b', js[0].addr])
  const c1 = await startC('c1', ['-b', js[1].addr])
  const cc = await startC('c-client', ['-b', js[2].addr, '--dht-client'])

  // (e) a C server enters the table of the js node it bootstrapped from; a C client does not
  let r = await js[0].req('waitRt', { peer: c0.peerId, timeoutMs: 15000 })
  check(r.ok, `C→js table: js0 adds C server c0 that bootstrapped from it (${r.ms} ms)`, r)
  r = await js[1].req('waitRt', { peer: c1.peerId, timeoutMs: 15000 })
  check(r.ok, 'C→js table: js1 adds C server c1', r)
  const connected = await poll(async () => (await js[2].req('conns')).peers.includes(cc.peerId))
  await sleep(2000) // identify and js's new-contact ping take a few ms; give it ample time
  const rt2 = await js[2].req('rt')
  check(connected && !rt2.peers.includes(cc.peerId),
    'C→js table: js2 is connected to the C node in client mode (--dht-client) and leaves it out of its table', { connected, rt2 })
  // and the other way: the js node c0 bootstrapped from is in c0's table (C find-peer
  // answers from the table first) — checked below through lookups instead.

  // (a) C put (c0, which entered through js0), C get entering through js3, stored by js
  const key = `/kwaai/c-test/${rand()}`
  const value = `from C ${rand()}`
  r = await dht(c0, 'put', key, value)
  const m = /stored on (\d+) peers/.exec(r.out)
  check(r.code === 0 && m && +m[1] >= 3, `C put ${key} through c0: ${r.out.trim()}`, show(r))
  r = await dht(js[3], 'get', key)
  check(r.code === 0 && r.out === value, 'C get entering through js3 (a transient node) returns the value c0 put', show(r))
  const held = await Promise.all(js.map((j) => j.req('record', { key })))
  const holders = held.map((h, i) => h.found ? `js${i}` : null).filter(Boolean)
  check(holders.length >= 3, `js datastores hold C's signed /kwaai/ record, accepted by the js validator (${holders.join(' ')})`, held)
  r = await js[4].req('get', { key })
  check(r.ok && r.kwaaiValue === value && r.kwaaiSeq >= 1, `js4 gets C's record and opens its envelope (seq ${r.kwaaiSeq})`, r)

  // the reverse for /kwaai/: a record sealed in js (kwaai.mjs) is validated and opened by C
  const jkey = `/kwaai/js-to-c/${rand()}`
  r = await js[2].req('putKwaai', { key: jkey, value: 'sealed in js', seq: 7 })
  check(r.ok && r.stored >= 3, `js2 puts a js-sealed ${jkey} (${r.stored} peers stored it)`, r)
  r = await dht(c1, 'get', jkey)
  check(r.code === 0 && r.out === 'sealed in js', 'C (c1) gets the js-sealed /kwaai/ record: signature and envelope check out in C', show(r))
  // an owner-bound key signed by the wrong peer: js refuses to store it (C's rule, doc'd)
  const owned = `/kwaai/${c0.peerId}/status`
  r = await js[2].req('putKwaai', { key: owned, value: 'not yours' })
  const ownedHeld = await Promise.all(js.map((j, i) => i === 2 ? { found: false } : j.req('record', { key: owned })))
  const cOwned = await dht(c1, 'get', owned)
  check(r.ok && r.stored === 0 && ownedHeld.every((h) => !h.found) && cOwned.code === 1,
    `an owner-bound /kwaai/<c0>/... key signed by js2 is refused by the js peers and C finds nothing (stored ${r.stored}, C get exit ${cOwned.code})`, { r, ownedHeld, c: show(cOwned) })

  // (b) /pk/: js puts its public key, C fetches and validates it; C puts its own
  const id2 = peerIdFromString(js[2].peerId)
  const pk2 = Buffer.concat([Buffer.from('/pk/'), Buffer.from(id2.toMultihash().bytes)])
  const pub2 = Buffer.from(publicKeyToProtobuf(id2.publicKey))
  r = await js[2].req('put', { keyHex: pk2.toString('hex'), valueHex: pub2.toString('hex') })
  check(r.ok && r.stored >= 1, `js2 puts /pk/<js2> (${r.stored} peers)`, r)
  r = await dht(js[0], '--hex', 'get', pk2.toString('hex'))
  check(r.code === 0 && Buffer.compare(r.outBuf, pub2) === 0, "C gets js2's /pk/ record (the C validator hashes it to the key) and its bytes are js2's PublicKey", show(r))

  // the PublicKey bytes (which may hold 0x00 or end in 0x0a) go in as hex (--value-hex)
  const pkDir = dir('c-pk')
  const k = await run(kwnode, ['keygen', '-d', pkDir], 20000)
  const pkId = peerIdFromString(k.out.trim().split('\n').pop())
  const pub = Buffer.from(publicKeyToProtobuf(pkId.publicKey))
  const pkKey = Buffer.concat([Buffer.from('/pk/'), Buffer.from(pkId.toMultihash().bytes)])
  r = await run(kwnode, ['dht', '-d', pkDir, '-c', conf, '-b', js[1].addr, '--hex', '--value-hex',
    'put', pkKey.toString('hex'), pub.toString('hex')], 60000)
  check(r.code === 0 && /stored on [1-9]/.test(r.out), `C puts /pk/<its own multihash> = its PublicKey (--hex key, --value-hex): ${r.out.trim()}`, show(r))
  r = await js[3].req('get', { keyHex: pkKey.toString('hex') })
  let same = false
  try { same = r.ok && peerIdFromPublicKey(publicKeyFromProtobuf(Buffer.from(r.valueHex, 'hex'))).equals(pkId) } catch {}
  const pkHeld = await Promise.all(js.map((j) => j.req('record', { keyHex: pkKey.toString('hex') })))
  check(same && pkHeld.some((h) => h.found), `js3 gets C's /pk/ record and it hashes to C's peer id; js stored it (js /pk/ validator): ${pkHeld.filter((h) => h.found).length} js nodes`, { r, pkHeld })

  // (c) C provide -> js findProviders; js provide -> C find-providers
  const cidC = CID.createV1(0x55, Digest.create(0x12, randomBytes(32))).toString()
  r = await dht(c1, 'provide', cidC)
  check(r.code === 0 && /stored on [1-9]/.test(r.out), `C (c1) provides ${cidC}: ${r.out.trim()}`, show(r))
  r = await js[4].req('findProviders', { cid: cidC })
  const c1p = r.providers?.find((p) => p.peerId === c1.peerId)
  check(r.ok && c1p && c1p.addrs.length > 0, `js4 findProviders lists C node c1 with its addresses (${c1p?.addrs.join(' ')})`, r)
  const cidJ = CID.createV1(0x55, Digest.create(0x12, randomBytes(32))).toString()
  r = await js[3].req('provide', { cid: cidJ })
  check(r.ok, `js3 provides ${cidJ} (${r.messages} requests)`, r)
  r = await dht(js[0], 'find-providers', cidJ)
  check(r.code === 0 && r.out.trim().split('\n').includes(js[3].peerId), 'C find-providers (transient, entering through js0) lists js3', show(r))
  r = await dht(c0, 'find-providers', cidJ)
  check(r.code === 0 && r.out.trim().split('\n').includes(js[3].peerId), 'C find-providers through c0 lists js3', show(r))

  // (d) C finds a js peer it was never connected to: jsX knows only js1
  const jx = new JsKad('js-x')
  await jx.ready()
  await jx.req('connect', { addr: js[1].addr })
  r = await js[1].req('waitRt', { peer: jx.peerId, timeoutMs: 10000 })
  const before = await jx.req('conns')
  const port = jx.addr.split('/')[4]
  r = await dht(c0, 'find-peer', jx.peerId)
  check(r.code === 0 && r.out.includes(`/tcp/${port}/p2p/${jx.peerId}`) && !before.peers.includes(c0.peerId),
    `C (c0, bootstrapped from js0) finds js-x, which only js1 knows and c0 never connected to: ${r.out.trim().split('\n')[0]}`, show(r))
  r = await dht(js[4], 'find-peer', jx.peerId)
  check(r.code === 0 && r.out.includes(`/p2p/${jx.peerId}`), 'a transient C node entering through js4 finds js-x too', show(r))
  // and js finds the C nodes it never met
  r = await jx.req('findPeer', { peer: c1.peerId, useCache: false })
  check(r.ok && r.found && r.addrs.some((a) => a.includes(`/tcp/${c1.addr.split('/')[4]}`)), `js-x finds C node c1 by a lookup (peer store bypassed: ${r.messages} requests)`, r)
  await jx.stop()

  // (e) continued: the C server's table holds js servers (its find-peer for a js node it
  // bootstrapped from needs no lookup) — and js's table view of c1 after all this traffic
  const rt1 = await js[3].req('rt')
  check(rt1.ok && (rt1.peers.includes(c0.peerId) || rt1.peers.includes(c1.peerId)) && !rt1.peers.includes(cc.peerId),
    `js3's table, after the lookups, holds C servers (${[c0, c1].filter((c) => rt1.peers.includes(c.peerId)).length} of 2) and not the C client`, rt1)

  await Promise.all([c0.stop(), c1.stop(), cc.stop()])
  check(c0.exited === 0 && c1.exited === 0 && cc.exited === 0, `C nodes exit 0 on SIGTERM (${c0.exited} ${c1.exited} ${cc.exited})`)
}
