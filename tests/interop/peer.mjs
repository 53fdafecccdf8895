#!/usr/bin/env node
// js-libp2p counterpart of tools/interop/kw_interop_peer (the C peer). Both speak the same
// line protocol on stdin/stdout so tests/interop/run.mjs and tools/bench/bench_net_swarm.sh
// can drive either side with the same commands. 127.0.0.1 only.
//
//   node peer.mjs [--key ed25519|secp256k1|rsa] [--listen /ip4/127.0.0.1/tcp/0] [--no-listen]
//
// At start it prints `peer-id <id>` and one `listen <multiaddr>/p2p/<id>` line per address,
// then `ready`. Each command line gets exactly one reply line starting with `ok <cmd>` or
// `err <cmd> <reason>`. Unsolicited lines start with `event ` (streams the remote opened
// to our echo protocol: `event stream <proto> eof|close|reset`).
//
// Commands (peer = a peer id printed earlier, or a multiaddr for dial/ping):
//   dial <multiaddr>               ok dial <peer-id>
//   protocols <peer>               ok protocols <p1> <p2> ...     (from identify; waits up to 5 s)
//   storeprotocols <peer> [want]   ok storeprotocols <p1> ...     (peer store: identify push updates it)
//   ping <peer|multiaddr> [n]      ok ping <rtt-ms> ...           (/ipfs/ping/1.0.0, one stream)
//   echo <peer> <streams> <bytes>  ok echo <streams> <MiB/s>      (concurrent, SHA-256 checked)
//   bulk <peer> <bytes>            ok bulk <sha256-sent> <sha256-received> <MiB/s>
//   sink <peer> <bytes>            ok sink <bytes> <MiB/s>        (one-way bulk to /kw-test/sink)
//   halfclose|close|reset <peer>   ok <cmd>                        (stream end scenarios)
//   dialbench <multiaddr> <n>      ok dialbench <median-ms> <p10-ms> <p90-ms>
//   hangup <peer>                  ok hangup
//   stats                          ok stats conns=<n> streams=<n>
//   quit
import { createHash, randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import { performance } from 'node:perf_hooks'

if (typeof Promise.withResolvers !== 'function') {
  // libp2p 3.x targets Node 22; this is the only piece Node 20 lacks.
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
const { identify, identifyPush } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { generateKeyPair } = await import('@libp2p/crypto/keys')
const { peerIdFromString } = await import('@libp2p/peer-id')
const { multiaddr } = await import('@multiformats/multiaddr')

const ECHO = '/kw-test/echo/1.0.0'
const SINK = '/kw-test/sink/1.0.0'

const args = process.argv.slice(2)
let keyType = 'ed25519'
let listen = ['/ip4/127.0.0.1/tcp/0']
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--key') keyType = args[++i]
  else if (args[i] === '--listen') listen = [args[++i]]
  else if (args[i] === '--no-listen') listen = []
  else { console.error(`peer.mjs: unknown argument ${args[i]}`); process.exit(2) }
}

function out (line) { process.stdout.write(line + '\n') }

async function makeKey (t) {
  switch (t) {
    case 'ed25519': return generateKeyPair('Ed25519')
    case 'secp256k1': return generateKeyPair('secp256k1')
    case 'rsa': return generateKeyPair('RSA', 2048)
    default: throw new Error(`unknown key type ${t}`)
  }
}

async function createNode (privateKey, listenAddrs) {
  return createLibp2p({
    privateKey,
    addresses: { listen: listenAddrs },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), identifyPush: identifyPush(), ping: ping() },
    connectionManager: {
      // Tests and benchmarks reconnect quickly from 127.0.0.1: no inbound rate limit.
      inboundConnectionThreshold: 1e9,
      maxIncomingPendingConnections: 1000,
      maxConnections: 1000
    },
    connectionMonitor: { enabled: false }
  })
}

function chunked (total, size = 65536) {
  const chunks = []
  for (let off = 0; off < total; off += size) chunks.push(Math.min(size, total - off))
  return chunks
}

async function sendAll (stream, data) {
  for (let off = 0; off < data.length; off += 65536) {
    const piece = data.subarray(off, Math.min(off + 65536, data.length))
    if (!stream.send(piece)) await stream.onDrain()
  }
}

async function readAll (stream, hash) {
  let n = 0
  for await (const chunk of stream) {
    const b = chunk.subarray ? chunk.subarray() : chunk
    if (hash) hash.update(b)
    n += b.length
  }
  return n
}

const identified = new Map()  // peer id string -> protocols
const waiters = new Map()

const node = await createNode(await makeKey(keyType), listen)

node.addEventListener('peer:identify', (evt) => {
  const id = evt.detail.peerId.toString()
  identified.set(id, evt.detail.protocols)
  for (const w of waiters.get(id) ?? []) w()
  waiters.delete(id)
})

let echoStreams = 0
function reportEnd (proto, stream) {
  stream.addEventListener('remoteCloseWrite', () => out(`event stream ${proto} eof`))
  stream.addEventListener('close', (evt) => {
    echoStreams--
    out(`event stream ${proto} ${evt.error ? 'reset' : 'close'}`)
  })
}

await node.handle(ECHO, async (stream) => {
  echoStreams++
  reportEnd(ECHO, stream)
  try {
    for await (const chunk of stream) {
      if (!stream.send(chunk)) await stream.onDrain()
    }
    await stream.close()
  } catch (e) {
    stream.abort(e)
  }
}, { maxInboundStreams: 1024, maxOutboundStreams: 1024 })

await node.handle(SINK, async (stream) => {
  try {
    const n = await readAll(stream)
    const b = Buffer.alloc(8)
    b.writeBigUInt64BE(BigInt(n))
    stream.send(b)
    await stream.close()
  } catch (e) {
    stream.abort(e)
  }
}, { maxInboundStreams: 16, maxOutboundStreams: 16 })

function peerOf (s) {
  if (s.startsWith('/')) return multiaddr(s)
  return peerIdFromString(s)
}

function openStream (peer, proto) {
  return node.dialProtocol(peerOf(peer), proto, { maxOutboundStreams: 1024 })
}

async function waitIdentify (id, ms) {
  if (identified.has(id)) return identified.get(id)
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('identify timeout')), ms)
    const l = waiters.get(id) ?? []
    l.push(() => { clearTimeout(t); resolve() })
    waiters.set(id, l)
  })
  return identified.get(id)
}

async function echoOnce (peer, size) {
  const data = randomBytes(size)
  const sent = createHash('sha256').update(data).digest('hex')
  const stream = await openStream(peer, ECHO)
  const recvHash = createHash('sha256')
  const reading = readAll(stream, recvHash)
  await sendAll(stream, data)
  await stream.close()
  const n = await reading
  const got = recvHash.digest('hex')
  if (n !== size || got !== sent) throw new Error(`echo mismatch: ${n}/${size} bytes, ${got} != ${sent}`)
  return { sent, got }
}

function pct (arr, p) {
  const s = [...arr].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]
}

const commands = {
  async dial ([ma]) {
    const conn = await node.dial(multiaddr(ma))
    return conn.remotePeer.toString()
  },
  async protocols ([peer]) {
    const p = await waitIdentify(peer, 5000)
    return p.join(' ')
  },
  // the peer store's protocol list, which identify push updates (polls until `want`, 5 s)
  async storeprotocols ([peer, want]) {
    const t0 = Date.now()
    for (;;) {
      const p = (await node.peerStore.get(peerIdFromString(peer))).protocols
      if (!want || p.includes(want) || Date.now() - t0 > 5000) return p.join(' ')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  },
  async ping ([peer, n = '1']) {
    const rtts = []
    for (let i = 0; i < Number(n); i++) {
      const stream = await openStream(peer, '/ipfs/ping/1.0.0')
      const data = randomBytes(32)
      const t0 = performance.now()
      stream.send(data)
      let got = Buffer.alloc(0)
      for await (const chunk of stream) {
        got = Buffer.concat([got, chunk.subarray ? chunk.subarray() : chunk])
        if (got.length >= 32) break
      }
      rtts.push(performance.now() - t0)
      if (!got.subarray(0, 32).equals(data)) throw new Error('ping payload mismatch')
      await stream.close()
    }
    return rtts.map((r) => r.toFixed(3)).join(' ')
  },
  async echo ([peer, streams, bytes]) {
    const t0 = performance.now()
    await Promise.all(Array.from({ length: Number(streams) }, () => echoOnce(peer, Number(bytes))))
    const s = (performance.now() - t0) / 1000
    return `${streams} ${(Number(streams) * Number(bytes) / s / 1048576).toFixed(1)}`
  },
  async bulk ([peer, bytes]) {
    const t0 = performance.now()
    const r = await echoOnce(peer, Number(bytes))
    const s = (performance.now() - t0) / 1000
    return `${r.sent} ${r.got} ${(Number(bytes) / s / 1048576).toFixed(1)}`
  },
  async sink ([peer, bytes]) {
    const total = Number(bytes)
    const piece = randomBytes(65536)
    const stream = await openStream(peer, SINK)
    const t0 = performance.now()
    for (const n of chunked(total)) {
      if (!stream.send(n === piece.length ? piece : piece.subarray(0, n))) await stream.onDrain()
    }
    await stream.close()
    let reply = Buffer.alloc(0)
    for await (const chunk of stream) reply = Buffer.concat([reply, chunk.subarray ? chunk.subarray() : chunk])
    const s = (performance.now() - t0) / 1000
    if (reply.length !== 8 || Number(reply.readBigUInt64BE()) !== total) throw new Error('sink count mismatch')
    return `${total} ${(total / s / 1048576).toFixed(1)}`
  },
  async halfclose ([peer]) {
    const stream = await openStream(peer, ECHO)
    stream.send(Buffer.from('half'))
    await stream.close()  // FIN: the remote sees EOF and still answers
    const got = []
    for await (const c of stream) got.push(Buffer.from(c.subarray ? c.subarray() : c))
    if (Buffer.concat(got).toString() !== 'half') throw new Error('half-close echo mismatch')
    return ''
  },
  async close ([peer]) {
    const stream = await openStream(peer, ECHO)
    stream.send(Buffer.from('x'))
    for await (const c of stream) { if (c.length) break }
    await stream.close()
    return ''
  },
  async reset ([peer]) {
    const stream = await openStream(peer, ECHO)
    stream.send(Buffer.from('y'))
    for await (const c of stream) { if (c.length) break }
    stream.abort(new Error('test reset'))
    return ''
  },
  async dialbench ([ma, n]) {
    const times = []
    const addr = multiaddr(ma)
    for (let i = 0; i < Number(n); i++) {
      const t0 = performance.now()
      const conn = await node.dial(addr, { force: true })
      times.push(performance.now() - t0)
      await conn.close()
    }
    return `${pct(times, 0.5).toFixed(3)} ${pct(times, 0.1).toFixed(3)} ${pct(times, 0.9).toFixed(3)}`
  },
  async hangup ([peer]) {
    await node.hangUp(peerOf(peer))
    return ''
  },
  async stats () {
    return `conns=${node.getConnections().length} streams=${echoStreams}`
  }
}

out(`peer-id ${node.peerId.toString()}`)
for (const ma of node.getMultiaddrs()) out(`listen ${ma.toString()}`)
out('ready')

const rl = createInterface({ input: process.stdin })
let chain = Promise.resolve()
rl.on('line', (line) => {
  const [cmd, ...rest] = line.trim().split(/\s+/)
  if (!cmd) return
  chain = chain.then(async () => {
    if (cmd === 'quit') {
      await node.stop()
      out('ok quit')
      process.exit(0)
    }
    const fn = commands[cmd]
    if (!fn) { out(`err ${cmd} unknown command`); return }
    try {
      const r = await fn(rest)
      out(`ok ${cmd}${r ? ' ' + r : ''}`)
    } catch (e) {
      out(`err ${cmd} ${String(e.message ?? e).replace(/\n/g, ' ')}`)
    }
  })
})
rl.on('close', () => { chain.then(() => node.stop()).then(() => process.exit(0)) })
