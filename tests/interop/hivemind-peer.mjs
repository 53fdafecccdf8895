#!/usr/bin/env node
// The independent js Hivemind DHT peer (hivemind-lib.mjs) as a process: serves
// DHTProtocol.rpc_ping / rpc_store / rpc_find and calls them on others, driven by the same
// line protocol as tools/interop/kw_hm_peer (the C peer), so tests/interop/hivemind.mjs can
// drive either side alike. 127.0.0.1 only.
//
//   node tests/interop/hivemind-peer.mjs [--listen /ip4/127.0.0.1/tcp/0]
//
// Prints `peer-id <id>`, `node-id <hex>`, `listen <multiaddr>` and `ready`; each command gets
// one line `ok <cmd> ...` or `err <cmd> <reason>` (a remote handler error: `err <cmd> remote
// <text>`).
//   dial <multiaddr>                                   ok dial <peer-id>
//   ping <peer> [validate]                             ok ping node_id=<hex> dht_time=<s> available=0|1
//   store <peer> <key> regular|dict|<subkey-hex> <value-hex> <exp> [cache]
//                                                      ok store store_ok=0|1 node_id=<hex>
//   find <peer> <key>                                  ok find type=<n> exp=<s> value=<hex|-> nearest=<n> node_id=<hex>
//   get <key>                                          ok get type=<n> exp=<s> value=<hex|->   (our own storage)
//   stats                                              ok stats pings= stores= finds= bad=
//   quit
// <key> is a str key: its DHTID is SHA-1 of its msgpack (hivemind/dht/routing.py).
import { createInterface } from 'node:readline'
import {
  createNode, DhtPeer, HandlerError, dhtId, multiaddr, peerIdFromString, IS_REGULAR_VALUE, IS_DICTIONARY
} from './hivemind-lib.mjs'

const args = process.argv.slice(2)
let listen = ['/ip4/127.0.0.1/tcp/0']
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--listen') listen = [args[++i]]
  else { console.error(`hivemind-peer.mjs: unknown argument ${args[i]}`); process.exit(2) }
}
const out = (line) => process.stdout.write(line + '\n')
const hex = (b) => (b && b.length ? Buffer.from(b).toString('hex') : '-')
const nodeHex = (peer) => hex(peer?.node_id)

const node = await createNode({ listen })
const dht = new DhtPeer(node)
await dht.start()
out(`peer-id ${node.peerId}`)
out(`node-id ${dht.nodeId.toString('hex')}`)
for (const ma of node.getMultiaddrs()) out(`listen ${ma}`)
out('ready')

const target = (s) => (s.startsWith('/') ? multiaddr(s) : peerIdFromString(s))
const fmt = (x) => x.toFixed(6)

function describe (type, exp, value) { return `type=${type} exp=${fmt(exp)} value=${hex(value)}` }

const commands = {
  async dial ([ma]) {
    const conn = await node.dial(multiaddr(ma))
    return `${conn.remotePeer}`
  },
  async ping ([peer, v]) {
    const r = await dht.callPing(target(peer), v === 'validate')
    return `node_id=${nodeHex(r.peer)} dht_time=${fmt(r.dht_time)} available=${r.available ? 1 : 0}`
  },
  async store ([peer, key, sub, value, exp, cache]) {
    const subkey = sub === 'regular' ? IS_REGULAR_VALUE : sub === 'dict' ? IS_DICTIONARY : Buffer.from(sub, 'hex')
    const r = await dht.callStore(target(peer), [{ key: dhtId(key), subkey, value: Buffer.from(value, 'hex'), exp: Number(exp), inCache: cache === 'cache' }])
    if (r.store_ok.length !== 1) throw new Error('store_ok does not hold one answer')
    return `store_ok=${r.store_ok[0] ? 1 : 0} node_id=${nodeHex(r.peer)}`
  },
  async find ([peer, key]) {
    const r = await dht.callFind(target(peer), [dhtId(key)])
    if (r.results.length !== 1) throw new Error('results do not hold one answer')
    const x = r.results[0]
    return `${describe(x.type, x.expiration_time, x.value)} nearest=${x.nearest_node_ids.length} node_id=${nodeHex(r.peer)}`
  },
  async get ([key]) {  // what a find of our own storage would answer (the same code path)
    const x = dht.result(dht.lookup(dhtId(key)))
    return describe(x.type, x.expiration_time ?? 0, x.value)
  },
  async stats () {
    const s = dht.stats
    return `pings=${s.pings} stores=${s.stores} finds=${s.finds} bad=${s.bad}`
  },
  async quit () { setImmediate(async () => { await node.stop(); process.exit(0) }); return '' }
}

// One command at a time, in order, like the C peer.
let chain = Promise.resolve()
const rl = createInterface({ input: process.stdin })
rl.on('line', (line) => {
  const [cmd, ...rest] = line.trim().split(/\s+/)
  if (!cmd) return
  chain = chain.then(async () => {
    if (!commands[cmd]) { out(`err ${cmd} unknown command`); return }
    try {
      const r = await commands[cmd](rest)
      out(`ok ${cmd}${r ? ' ' + r : ''}`)
    } catch (e) {
      out(e instanceof HandlerError ? `err ${cmd} remote ${e.message}` : `err ${cmd} ${e.message}`)
    }
  })
})
rl.on('close', () => { chain.then(() => node.stop()).then(() => process.exit(0)) })
