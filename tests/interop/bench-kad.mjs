#!/usr/bin/env node
// Kademlia benchmark (make bench-kad): lookups in a loopback swarm of C nodes next to the same
// size swarm of js-libp2p kad-dht nodes, measured in one run, and the memory of a C node next
// to a js node holding the same routing table.
//
//   node tests/interop/bench-kad.mjs <build-dir>     (needs <build-dir>/kwnode and
//                                                      <build-dir>/tools/interop/kw_kad_bench)
//
// C swarm: N-1 `kwnode run` processes (each bootstraps from the first node and one random
// earlier node) plus the measuring node, kw_kad_bench (the same net/kad code), which joins the
// same way and runs L lookups one after the other: kw_kad_get_closest of 32 random bytes.
// js swarm: N-1 kad-dht nodes, PER of them per Node.js process (100 processes of ~100 MiB each
// would not fit beside the C swarm on a small VM), each dialling the first node and one random
// earlier node and then looking itself up, plus the measuring node in a Node.js process of its
// own, joined the same way, running L getClosestPeers of 32 random bytes. Both start a
// lookup at most every BENCH_KAD_INTERVAL_MS (100), so the measuring node stays well under
// the C servers' per-peer rate limit (KW_NET_KAD_RATE_PER_PEER, 20/s). The C measuring node
// prints its request and table counters (kw_kad_bench `stats`): see doc/bench.md for why its
// table shrinks during the run.
// "messages" is the requests the measuring node sent for one lookup (C: kw_kad_result
// .messages; js: SEND_QUERY events).
// Memory: a C node (kw_kad_bench --dial) and a js node (its own process, no self-lookup) dial
// the same T js servers and nothing else; once each table holds them, VmRSS is read from
// /proc/<pid>/status.
// Env: BENCH_KAD_NODES (100), BENCH_KAD_LOOKUPS (200), BENCH_KAD_JS_PER_PROC (25),
// BENCH_KAD_RT (30), BENCH_KAD_INTERVAL_MS (100).
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { spawn } from 'node:child_process'
import { JsKad, Proc, killAll, vmRssKiB } from './kadlib.mjs'

const o = process.argv[2] ?? 'build/bench'
const kwnode = join(o, 'kwnode')
const benchBin = join(o, 'tools/interop/kw_kad_bench')
const N = +(process.env.BENCH_KAD_NODES ?? 100)
const L = +(process.env.BENCH_KAD_LOOKUPS ?? 200)
const PER = +(process.env.BENCH_KAD_JS_PER_PROC ?? 25)
const T = +(process.env.BENCH_KAD_RT ?? 30)
const INTERVAL = +(process.env.BENCH_KAD_INTERVAL_MS ?? 100)
const tmp = mkdtempSync(join(tmpdir(), 'kw-bench-kad-'))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const pick = (a) => a[Math.floor(Math.random() * a.length)]
function finish (code) { killAll(); rmSync(tmp, { recursive: true, force: true }); process.exit(code) }

function pct (xs, p) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]
}
const stats = (xs) => ({ med: pct(xs, 50), p99: pct(xs, 99), mean: xs.reduce((a, b) => a + b, 0) / xs.length })

// runs fn over items, at most `width` at a time
async function pool (items, width, fn) {
  let i = 0
  await Promise.all(Array.from({ length: width }, async () => { while (i < items.length) { const k = i++; await fn(items[k], k) } }))
}

// A kw_kad_bench process: resolves with its parsed output lines as they come.
function startBench (args) {
  const p = spawn(benchBin, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  const lines = []
  const waiters = []
  let err = ''
  p.stderr.on('data', (d) => { err += d; if (err.length > 20000) err = err.slice(-10000) })
  createInterface({ input: p.stdout }).on('line', (l) => { lines.push(l); for (const w of waiters.splice(0)) w() })
  p.on('exit', () => { for (const w of waiters.splice(0)) w() })
  const waitLine = async (re, ms) => {
    const end = Date.now() + ms
    for (;;) {
      const l = lines.find((x) => re.test(x))
      if (l) return l
      if (p.exitCode != null || Date.now() > end) throw new Error(`kw_kad_bench: no line matching ${re}: ${lines.slice(-5).join(' | ')} ${err.slice(-1000)}`)
      await new Promise((resolve) => { waiters.push(resolve); setTimeout(resolve, 500) })
    }
  }
  process.on('exit', () => { try { p.kill('SIGKILL') } catch {} })
  return { p, lines, waitLine }
}

function parseLookups (lines) {
  const ls = lines.filter((l) => l.startsWith('lookup ')).map((l) => l.split(' '))
  return { ms: ls.map((f) => +f[1]), msgs: ls.map((f) => +f[2]), peers: ls.map((f) => +f[3]), errors: ls.filter((f) => f[4] === 'err').length }
}

async function cSwarm () {
  const conf = join(tmp, 'node.conf')
  // every node dials from 127.0.0.1: per-address inbound limits lifted (doc/config.md)
  writeFileSync(conf, 'conns_per_ip = 1024\nconns_per_subnet = 1024\nhandshakes_per_ip = 256\nhandshakes_per_subnet = 256\n')
  const start = async (i, boot) => {
    const d = join(tmp, `c${i}`)
    mkdirSync(d, { mode: 0o700 })
    const p = new Proc(`c${i}`, kwnode, ['run', '-c', conf, '-d', d, '-l', '/ip4/127.0.0.1/tcp/0', '-L', '1', ...[...new Set(boot)].flatMap((b) => ['-b', b])])
    const [, addr] = await p.waitFor(/^listen (\S+)/, 30000)
    const [, id] = await p.waitFor(/^peer-id (\S+)/, 30000)
    p.addr = addr.includes('/p2p/') ? addr : `${addr}/p2p/${id}`
    return p
  }
  console.log(`C swarm: starting ${N - 1} kwnode run processes...`)
  const t0 = Date.now()
  const nodes = [await start(0, [])]
  for (let i = 1; i < N - 1; i += 10) {
    const batch = []
    for (let j = i; j < Math.min(N - 1, i + 10); j++) batch.push(start(j, [nodes[0].addr, pick(nodes).addr]))
    nodes.push(...await Promise.all(batch))
  }
  console.log(`C swarm: ${nodes.length} nodes up in ${((Date.now() - t0) / 1000).toFixed(1)} s; settling 5 s`)
  await sleep(5000)
  console.log(`C swarm: measuring node joins and runs ${L} lookups...`)
  const b = startBench([...new Set([nodes[0].addr, pick(nodes).addr])].flatMap((a) => ['--bootstrap', a]).concat(['--lookups', String(L), '--interval-ms', String(INTERVAL)]))
  const tl = await b.waitLine(/^table /, 600000)
  const joined = +(await b.waitLine(/^joined /, 1000)).split(' ')[1]
  const look = parseLookups(b.lines)
  const cstats = b.lines.find((l) => l.startsWith('stats ')) ?? ''
  const rss = nodes.map((n) => vmRssKiB(n.proc.pid)).filter((x) => x != null)
  await Promise.all(nodes.map((n) => n.stop()))
  return { look, joined, cstats, table: +tl.split(' ')[1], benchRss: +tl.split(' ')[3], kwnodeRss: stats(rss) }
}

async function jsSwarm () {
  const procs = []
  for (let left = N - 1, i = 0; left > 0; left -= PER, i++) procs.push(new JsKad(`jsp${i}`, ['--nodes', String(Math.min(PER, left)), '--quiet']))
  console.log(`js swarm: starting ${N - 1} kad-dht nodes in ${procs.length} Node.js processes...`)
  const t0 = Date.now()
  await Promise.all(procs.map((p) => p.ready()))
  const nodes = procs.flatMap((p) => p.nodes.map((n, i) => ({ proc: p, i, addr: n.addr, peerId: n.peerId })))
  const joinNode = async (n, k, earlier) => {
    for (const a of new Set([earlier[0].addr, pick(earlier).addr])) await n.proc.req('connect', { node: n.i, addr: a })
  }
  for (let k = 1; k < nodes.length; k++) await joinNode(nodes[k], k, nodes.slice(0, k))
  await pool(nodes, 10, (n) => n.proc.req('getClosestPeers', { node: n.i, peer: n.peerId }, 120000))
  console.log(`js swarm: ${nodes.length} nodes joined and looked themselves up in ${((Date.now() - t0) / 1000).toFixed(1)} s; settling 5 s`)
  await sleep(5000)
  console.log(`js swarm: measuring node joins and runs ${L} lookups...`)
  const m = new JsKad('js-measure', ['--quiet'])
  await m.ready()
  for (const a of new Set([nodes[0].addr, pick(nodes).addr])) await m.req('connect', { addr: a })
  await m.req('getClosestPeers', { peer: m.peerId })
  let size = -1
  for (let still = 0; still < 30;) { // the table stopped growing for 3 s
    const s = (await m.req('rt')).peers.length
    if (s === size) still++; else { still = 0; size = s }
    await sleep(100)
  }
  const joined = size
  const look = { ms: [], msgs: [], peers: [], errors: 0 }
  for (let i = 0; i < L; i++) {
    const t0 = Date.now()
    const r = await m.req('getClosestPeers', { keyHex: randomBytes(32).toString('hex') }, 120000)
    if (!r.ok) { look.errors++; continue }
    look.ms.push(r.ms); look.msgs.push(r.messages); look.peers.push(r.peers.length)
    await sleep(Math.max(0, t0 + INTERVAL - Date.now()))
  }
  const table = (await m.req('rt')).peers.length
  const measureRss = vmRssKiB(m.proc.pid)
  const perProc = procs.map((p) => vmRssKiB(p.proc.pid) / p.nodes.length)
  await m.stop()

  // memory at an equal table: a C node and a js node dial the same T js servers, nothing else
  console.log(`memory: a C node and a js node each dial the same ${T} js servers...`)
  const targets = [...nodes].sort(() => Math.random() - 0.5).slice(0, T).map((n) => n.addr)
  const cb = startBench([...targets.flatMap((a) => ['--dial', a]), '--hold'])
  const ct = await cb.waitLine(/^table /, 120000)
  const cRss = vmRssKiB(cb.p.pid)
  cb.p.stdin.end()
  const jr = new JsKad('js-rss', ['--no-self-query', '--quiet'])
  await jr.ready()
  await pool(targets, 5, (a) => jr.req('connect', { addr: a }))
  let jt = -1
  for (let still = 0; still < 30;) {
    const s = (await jr.req('rt')).peers.length
    if (s === jt) still++; else { still = 0; jt = s }
    await sleep(100)
  }
  const jRss = vmRssKiB(jr.proc.pid)
  await jr.stop()
  await Promise.all(procs.map((p) => p.stop()))
  return { look, joined, table, measureRss, perProc: stats(perProc), mem: { cTable: +ct.split(' ')[1], cRss, jTable: jt, jRss } }
}

setTimeout(() => { console.error('bench-kad: overall timeout (1800 s)'); finish(1) }, 1800000).unref()
try {
  const c = await cSwarm()
  const j = await jsSwarm()
  const f = (x, d = 1) => x == null ? '?' : x.toFixed(d)
  const row = (name, a, b) => console.log(`${name.padEnd(44)} ${String(a).padEnd(26)} ${b}`)
  const cm = stats(c.look.ms); const jm = stats(j.look.ms)
  const cq = stats(c.look.msgs); const jq = stats(j.look.msgs)
  console.log()
  console.log(`${N}-node loopback swarms, ${L} lookups each (get-closest-peers of 32 random bytes, one every ${INTERVAL} ms at most)`)
  row('', 'C (kwaainet-edge)', 'js-libp2p kad-dht 16.4.5')
  row('lookup ms, median (p99)', `${f(cm.med, 2)} (${f(cm.p99, 2)})`, `${f(jm.med, 2)} (${f(jm.p99, 2)})`)
  row('requests per lookup, median (p99) [mean]', `${cq.med} (${cq.p99}) [${f(cq.mean)}]`, `${jq.med} (${jq.p99}) [${f(jq.mean)}]`)
  row('peers returned, median', stats(c.look.peers).med, stats(j.look.peers).med)
  row('failed lookups', c.look.errors, j.look.errors)
  // lookups that came back with a full set of k = 20 peers, on their own
  const full = (lk) => {
    const idx = lk.peers.map((p, i) => p >= 20 ? i : -1).filter((i) => i >= 0)
    if (!idx.length) return 'none'
    const ms = stats(idx.map((i) => lk.ms[i])); const q = stats(idx.map((i) => lk.msgs[i]))
    return `${idx.length}: ${f(ms.med, 2)} (${f(ms.p99, 2)}) ms, ${q.med} req`
  }
  row('lookups returning 20 peers: n: ms med (p99), req', full(c.look), full(j.look))
  row('measuring node: table before -> after', `${c.joined} -> ${c.table}`, `${j.joined} -> ${j.table}`)
  row('measuring node: VmRSS KiB after', c.benchRss, `${j.measureRss} (its own process)`)
  row(`node holding the same ${T} peers: table, VmRSS KiB`, `${j.mem.cTable}, ${j.mem.cRss}`, `${j.mem.jTable}, ${j.mem.jRss}`)
  row('swarm nodes: VmRSS KiB per node, median', `${f(c.kwnodeRss.med, 0)} (kwnode run)`, `${f(j.perProc.med, 0)} (${PER} nodes per process)`)
  console.log(`C measuring node: ${c.cstats}`)
  finish(0)
} catch (e) {
  console.error(`bench-kad: ${e?.stack ?? e}`)
  finish(1)
}
