#!/usr/bin/env node
// Hivemind DHT interop on 127.0.0.1 (doc/interop.md "Hivemind"): our C DHTProtocol server and
// client (tools/interop/kw_hm_peer, net/hivemind) against an independent js Hivemind peer
// (hivemind-lib.mjs: js-libp2p + protobufjs + @msgpack/msgpack, written from hivemind's
// sources, sharing no code with the C side), plus the js peer's byte vectors.
//
//   node tests/interop/hivemind.mjs <kw_hm_peer>
//
// Prints one `ok`/`FAIL` line per check; exit 1 when any failed.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  createNode, DhtPeer, HandlerError, callUnary, serveUnary, decodePb, peerIdFromString, dhtId, mpEncode, mpDecode, DictValue, multiaddr, encodePb, pb,
  IS_REGULAR_VALUE, IS_DICTIONARY, NOT_FOUND, FOUND_REGULAR, FOUND_DICTIONARY, FIND, STORE,
  callStream, serveStream
} from './hivemind-lib.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const cPeer = process.argv[2]
if (!cPeer) { console.error('usage: hivemind.mjs <kw_hm_peer>'); process.exit(2) }

let failed = 0
function check (name, cond, detail = '') {
  if (cond) console.log(`ok   ${name}`)
  else { failed++; console.log(`FAIL ${name}${detail ? ': ' + detail : ''}`) }
}
const now = () => Date.now() / 1000
const hexOf = (b) => Buffer.from(b).toString('hex')

// A child speaking the kw_hm_peer / hivemind-peer.mjs line protocol.
function child (cmd, args) {
  const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  const lines = []; let wake = null
  createInterface({ input: p.stdout }).on('line', (l) => { lines.push(l); if (wake) wake() })
  let err = ''
  p.stderr.on('data', (d) => { err = (err + d).slice(-4000) })
  async function line (pred, ms = 15000) {
    const end = Date.now() + ms
    for (;;) {
      const i = lines.findIndex(pred)
      if (i >= 0) return lines.splice(i, 1)[0]
      if (p.exitCode !== null || p.signalCode !== null) throw new Error(`${cmd} exited (${p.exitCode ?? p.signalCode}; stderr: ${err})`)
      if (Date.now() > end) throw new Error(`${cmd}: no expected line within ${ms} ms (stderr: ${err})`)
      await new Promise((resolve) => { wake = resolve; setTimeout(resolve, 100) })
    }
  }
  return {
    proc: p,
    line,
    stderr: () => err,
    async start () {  // generous: Node.js loading libp2p on a busy 2-core machine takes seconds
      const head = {}
      for (const k of ['peer-id', 'node-id', 'listen']) head[k] = (await line((l) => l.startsWith(k + ' '), 45000)).split(' ')[1]
      await line((l) => l === 'ready')
      return head
    },
    async cmd (text) {
      const c = text.split(' ')[0]
      p.stdin.write(text + '\n')
      return line((l) => l.startsWith(`ok ${c}`) || l.startsWith(`err ${c} `))
    },
    stop () {  // EOF on stdin ends both peers; a peer that hangs is killed after 5 s
      if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(p.exitCode)
      const exited = new Promise((resolve) => p.on('exit', (code) => resolve(code)))
      p.stdin.end()
      const t = setTimeout(() => p.kill('SIGKILL'), 5000)
      return exited.then((code) => { clearTimeout(t); return code })
    }
  }
}
const field = (reply, k) => (reply.match(new RegExp(`\\b${k}=(\\S+)`)) ?? [])[1]

async function vectors () {
  const p = spawn(process.execPath, [join(here, 'hivemind-vectors.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] })
  let text = ''
  p.stdout.on('data', (d) => { text += d })
  const code = await new Promise((resolve) => p.on('exit', resolve))
  check('js encoders reproduce the spec byte vectors', code === 0, text.split('\n').filter((l) => l.startsWith('FAIL')).join('; '))
}

// ---- js client -> C server -----------------------------------------------------------------
async function jsClientCServer () {
  const c = child(cPeer, [])
  let js = null
  try {
    const head = await c.start()
    const cNodeId = Buffer.from(head['node-id'], 'hex')
    const target = multiaddr(head.listen)
    js = new DhtPeer(await createNode())
    await js.start()   // serves rpc_ping so the C server's ping-back of a validate ping reaches us
    const t0 = now()
    let r = await js.callPing(target, false)
    check('C rpc_ping answers with its DHT node id', r.peer?.node_id?.equals(cNodeId), hexOf(r.peer?.node_id ?? []))
    check('C rpc_ping dht_time is within 3 s of ours (MAX_DHT_TIME_DISCREPANCY_SECONDS)',
      Math.abs(r.dht_time - t0) < 3, `${r.dht_time} vs ${t0}`)
    check('C rpc_ping without validate says available=false', r.available === false)
    r = await js.callPing(target, true)
    check('C rpc_ping validate pings the js peer back: available=true', r.available === true)

    // a plain record: rpc_store then rpc_find returns the bytes and the expiration exactly
    const key = dhtId('interop.regular'); const exp = now() + 60.25
    let s = await js.callStore(target, [{ key, value: mpEncode('hello'), exp }])
    check('C rpc_store of a plain value: store_ok=[true]', s.store_ok.length === 1 && s.store_ok[0] === true, JSON.stringify(s.store_ok))
    check('C rpc_store answers with its node id', s.peer?.node_id?.equals(cNodeId))
    let f = await js.callFind(target, [key])
    let x = f.results[0]
    check('C rpc_find returns FOUND_REGULAR with the stored bytes',
      f.results.length === 1 && x.type === FOUND_REGULAR && x.value.equals(mpEncode('hello')), `type ${x?.type}`)
    check('C rpc_find returns the stored expiration exactly', x.expiration_time === exp, `${x.expiration_time} vs ${exp}`)
    s = await js.callStore(target, [{ key, value: mpEncode('older'), exp: exp - 10 }])
    check('C rpc_store refuses an older expiration for an existing key', s.store_ok[0] === false)
    s = await js.callStore(target, [{ key, value: mpEncode('newer'), exp: exp + 10 }])
    f = await js.callFind(target, [key])
    check('C rpc_store takes a strictly later expiration (newest wins)',
      s.store_ok[0] === true && f.results[0].value.equals(mpEncode('newer')) && f.results[0].expiration_time === exp + 10)

    // subkey records merge into one DictionaryDHTValue (hivemind/dht/storage.py store_subkey)
    const dk = dhtId('interop.dict'); const e1 = now() + 30; const e2 = now() + 40; const e3 = now() + 35
    s = await js.callStore(target, [
      { key: dk, subkey: mpEncode('alpha'), value: mpEncode(1), exp: e1 },
      { key: dk, subkey: mpEncode('beta'), value: mpEncode(2), exp: e2 }])
    check('C rpc_store of two subkeys of one key: store_ok=[true,true]', s.store_ok.join() === 'true,true')
    // IS_DICTIONARY: a whole DictionaryDHTValue is merged entry by entry
    s = await js.callStore(target, [{ key: dk, subkey: IS_DICTIONARY, value: mpEncode(new DictValue(Infinity, e3, [['gamma', mpEncode(3), e3]])), exp: e3 }])
    check('C rpc_store of a whole DictionaryDHTValue (subkey b""): store_ok=[true]', s.store_ok[0] === true)
    f = await js.callFind(target, [dk])
    x = f.results[0]
    const d = x.type === FOUND_DICTIONARY ? mpDecode(x.value) : null
    check('C rpc_find returns FOUND_DICTIONARY as ext 0x50', d instanceof DictValue, `type ${x.type}`)
    if (d) {
      const got = d.items.map(([k, v, e]) => `${k}=${hexOf(v)}@${e}`).join(' ')
      check('the dictionary holds every subkey with its value and expiration, in insertion order',
        got === `alpha=${hexOf(mpEncode(1))}@${e1} beta=${hexOf(mpEncode(2))}@${e2} gamma=${hexOf(mpEncode(3))}@${e3}`, got)
      check('the dictionary maxsize is +inf and latest_expiration_time the latest stored', d.maxsize === Infinity && d.latest === e2, `${d.maxsize} ${d.latest}`)
      check('the record expiration is the latest subkey expiration', x.expiration_time === e2, `${x.expiration_time}`)
    }
    s = await js.callStore(target, [{ key: dk, subkey: mpEncode('alpha'), value: mpEncode(9), exp: e1 - 5 }])
    check('C rpc_store refuses an older subkey entry', s.store_ok[0] === false)
    f = await js.callFind(target, [dhtId('interop.absent')])
    check('C rpc_find of an unknown key: NOT_FOUND', f.results[0].type === NOT_FOUND)

    // a second js client: the first (which sent its node id) is now among the nearest nodes
    const js2 = new DhtPeer(await createNode())
    f = await js2.callFind(target, [dhtId('interop.absent')])
    x = f.results[0]
    check('C rpc_find lists the first client among the nearest (node id and peer id aligned)',
      x.nearest_node_ids.some((id, i) => id.equals(js.nodeId) && Buffer.from(x.nearest_peer_ids[i]).equals(js.node.peerId.toMultihash().bytes)),
      `${x.nearest_node_ids.length} nearest`)

    // malformed requests: Hivemind's error text, counted, and the node keeps serving
    let text = null
    try {
      const req = encodePb(pb.StoreRequest, {
        keys: [key, dk], subkeys: [IS_REGULAR_VALUE, IS_REGULAR_VALUE], values: [mpEncode('x')], expiration_time: [now() + 60, now() + 60], in_cache: [false, false]
      })
      await callUnary(js.node, target, STORE, req)
    } catch (e) { text = e }
    // hivemind/dht/protocol.py rpc_store: `assert len(keys) == len(values) == ...` -> AssertionError;
    // control.py answers repr(e). Python's bare assert gives exactly "AssertionError()".
    check('C rpc_store with misaligned keys/values answers exactly "AssertionError()"',
      text instanceof HandlerError && text.message === 'AssertionError()', String(text?.message ?? text))
    // a garbage envelope on DHTProtocol.rpc_find: the stream is dropped, no reply
    const st = await js.node.dialProtocol(target, FIND)
    st.send(Buffer.from([0x05, 0x0a, 0x03, 0x01, 0x02, 0x03]))   // callId of 3 bytes
    let replied = false
    const ended = (async () => { try { for await (const chunk of st) { if (chunk.length) replied = true } } catch {} return true })()
    const gone = await Promise.race([ended, new Promise((resolve) => setTimeout(() => resolve(false), 3000))])
    check('C drops a call whose callId is not 16 bytes without replying (stream ends)', gone && !replied)
    if (!gone) st.abort(new Error('test: no end'))
    const js3 = new DhtPeer(await createNode())
    r = await js3.callPing(target, false)
    f = await js3.callFind(target, [key])
    check('C keeps serving another client after the bad requests',
      r.peer?.node_id?.equals(cNodeId) && f.results[0].type === FOUND_REGULAR)
    const stats = await c.cmd('stats')
    check('C counts the bad request and the bad envelope',
      Number(field(stats, 'bad')) >= 1 && Number(field(stats, 'bad_envelopes')) >= 1, stats)
    await js2.node.stop(); await js3.node.stop()
  } finally {
    await js?.node.stop()
    const code = await c.stop()
    // a sanitizer build (make check-san) reports through the exit status
    check('the C server exits 0 at the end of its stdin', code === 0, `exit ${code}; stderr: ${c.stderr()}`)
  }
}

// ---- C client -> js server ------------------------------------------------------------------
async function cClientJsServer () {
  const j = child(process.execPath, [join(here, 'hivemind-peer.mjs')])
  const c = child(cPeer, [])
  try {
    const [jh] = await Promise.all([j.start(), c.start()])
    let r = await c.cmd(`dial ${jh.listen}`)
    check('C dials the js peer', r === `ok dial ${jh['peer-id']}`, r)
    const pid = jh['peer-id']
    r = await c.cmd(`ping ${pid}`)
    check('js rpc_ping answers the C client with its node id', field(r, 'node_id') === jh['node-id'], r)
    check('js rpc_ping dht_time is now', Math.abs(Number(field(r, 'dht_time')) - now()) < 3, r)
    r = await c.cmd(`ping ${pid} validate`)
    check('js rpc_ping validate pings the C peer back: available=1', field(r, 'available') === '1', r)

    const exp = (now() + 60.5).toFixed(6)
    r = await c.cmd(`store ${pid} interop.c.regular regular ${hexOf(mpEncode('from C'))} ${exp}`)
    check('js rpc_store takes the C client\'s plain value', field(r, 'store_ok') === '1' && field(r, 'node_id') === jh['node-id'], r)
    r = await c.cmd(`find ${pid} interop.c.regular`)
    check('js rpc_find returns it to the C client with the same bytes and expiration',
      field(r, 'type') === '1' && field(r, 'value') === hexOf(mpEncode('from C')) && field(r, 'exp') === exp, r)
    r = await j.cmd('get interop.c.regular')
    check('the js storage holds the record under SHA-1(msgpack(key)) the C client computed',
      field(r, 'type') === '1' && field(r, 'value') === hexOf(mpEncode('from C')), r)
    r = await c.cmd(`store ${pid} interop.c.regular regular 00 ${(Number(exp) - 5).toFixed(6)}`)
    check('js rpc_store refuses the C client\'s older record', field(r, 'store_ok') === '0', r)

    const e1 = (now() + 30).toFixed(6); const e2 = (now() + 45).toFixed(6)
    r = await c.cmd(`store ${pid} interop.c.dict ${hexOf(mpEncode('one'))} ${hexOf(mpEncode(1))} ${e1}`)
    const r2 = await c.cmd(`store ${pid} interop.c.dict ${hexOf(mpEncode('two'))} ${hexOf(mpEncode(2))} ${e2} cache`)
    check('js rpc_store takes two subkeys from the C client (main and cache tier)',
      field(r, 'store_ok') === '1' && field(r2, 'store_ok') === '1', `${r} / ${r2}`)
    r = await c.cmd(`find ${pid} interop.c.dict`)
    const v = field(r, 'value')
    const d = v && v !== '-' ? mpDecode(Buffer.from(v, 'hex')) : null
    // the cache record (one subkey, later expiration) wins over the main one, as protocol.py does
    check('js rpc_find answers the C client with FOUND_DICTIONARY', field(r, 'type') === '2' && d instanceof DictValue, r)
    check('js rpc_find prefers the cache tier record when it expires later',
      d instanceof DictValue && d.items.length === 1 && d.items[0][0] === 'two' && field(r, 'exp') === e2, r)
    r = await c.cmd(`store ${pid} interop.c.dict2 dict ${hexOf(mpEncode(new DictValue(Infinity, Number(e2), [['x', mpEncode(1), Number(e1)], ['y', mpEncode(2), Number(e2)]])))} ${e2}`)
    const f = await c.cmd(`find ${pid} interop.c.dict2`)
    const d2 = mpDecode(Buffer.from(field(f, 'value'), 'hex'))
    check('js rpc_store merges a whole DictionaryDHTValue sent by the C client',
      field(r, 'store_ok') === '1' && d2 instanceof DictValue && d2.items.map((i) => i[0]).join() === 'x,y', `${r} ${f}`)
    r = await c.cmd(`find ${pid} interop.c.absent`)
    check('js rpc_find of an unknown key: NOT_FOUND, and the requester is not among the neighbours',
      field(r, 'type') === '0' && field(r, 'nearest') === '0', r)
    r = await j.cmd('stats')
    check('the js server counted the C client\'s calls', r.includes('pings=2') && r.includes('stores=5') && r.includes('finds=4'), r)
  } finally {
    const code = await c.stop()
    check('the C client exits 0 at the end of its stdin', code === 0, `exit ${code}; stderr: ${c.stderr()}`)
    await j.stop()
  }
}

// ---- stream handlers, both directions (hivemind framing, net/hivemind/stream_rpc.c) -------
async function streamCalls () {
  const ECHO = 'Test.rpc_stream_echo'   // served by kw_hm_peer
  const JS = 'Test.rpc_js_stream'       // served here: "js:" + each request, then the count
  const c = child(cPeer, [])
  let js = null
  try {
    const head = await c.start()
    const target = multiaddr(head.listen)
    js = await createNode()
    const reqs = ['one', 'two', 'three'].map((t) => Buffer.from(t))
    let out = await callStream(js, target, ECHO, reqs)
    check('C stream handler echoes three js requests in order, then closes',
      out.map((b) => b.toString()).join() === 'one,two,three', out.map((b) => b.toString()).join())
    out = await callStream(js, target, ECHO, [])
    check('C stream handler: END_OF_STREAM alone is a call with no response', out.length === 0)
    const many = Array.from({ length: 50 }, (_, i) => Buffer.alloc(300, i))
    out = await callStream(js, target, ECHO, many)
    check('C stream handler echoes 50 requests of 300 bytes (prefetch and send back-pressure)',
      out.length === 50 && out.every((b, i) => b.equals(many[i])), `${out.length} responses`)
    let err = null
    try { await callStream(js, target, ECHO, [Buffer.from('a'), Buffer.from('fail'), Buffer.from('b')]) } catch (e) { err = e }
    check('C stream handler error frame reads as hivemind\'s P2PHandlerError text',
      err instanceof HandlerError && err.message === `Failed to call handler \`${ECHO}\` at ${head['peer-id']}: ValueError('boom')`,
      String(err?.message ?? err))
    // an unknown marker: the C node resets that stream, counts it, and keeps serving
    const st = await js.dialProtocol(target, ECHO)
    st.send(Buffer.from([0x02, 0, 0, 0, 0, 0, 0, 0, 1, 0x08]))
    const ended = (async () => { try { for await (const chunk of st) { void chunk } } catch {} return true })()
    const gone = await Promise.race([ended, new Promise((resolve) => setTimeout(() => resolve(false), 3000))])
    check('C resets a stream call with an unknown frame marker', gone)
    if (!gone) st.abort(new Error('test: no end'))
    out = await callStream(js, target, ECHO, [Buffer.from('after')])
    check('C keeps serving stream calls after the bad frame', out.length === 1 && out[0].toString() === 'after')

    const stats = {}
    await serveStream(js, JS, async function * (requests) {
      let n = 0
      for await (const r of requests) {
        if (r.toString() === 'boom') throw new Error('boom')
        n++
        yield Buffer.concat([Buffer.from('js:'), r])
      }
      yield Buffer.from([n])
    }, { stats })
    const jsAddr = js.getMultiaddrs()[0].toString()
    const jpid = js.peerId.toString()
    let r = await c.cmd(`dial ${jsAddr}`)
    check('C dials the js stream server', r === `ok dial ${jpid}`, r)
    const hex = (t) => Buffer.from(t).toString('hex')
    r = await c.cmd(`stream ${jpid} ${JS} ${hex('a')},${hex('bb')}`)
    check('js stream handler answers the C caller: each request, then the count',
      r === `ok stream n=3 msgs=${hex('js:a')},${hex('js:bb')},02`, r)
    r = await c.cmd(`stream ${jpid} ${JS} -`)
    check('C caller with no requests gets the js handler\'s single response', r === 'ok stream n=1 msgs=00', r)
    r = await c.cmd(`stream ${jpid} ${JS} ${hex('x')},${hex('boom')}`)
    check('js handler error reaches the C caller as Python\'s text',
      r === `err stream remote Failed to call handler \`${JS}\` at ${jpid}: boom`, r)
    const big = Array.from({ length: 12 }, (_, i) => hex(`m${i}`)).join(',')
    r = await c.cmd(`stream ${jpid} ${JS} ${big}`)
    check('C caller sends 12 requests through the js prefetch queue of 5',
      field(r, 'n') === '13' && stats.maxQueued <= 5, `${r} maxQueued=${stats.maxQueued}`)
    r = await c.cmd(`stream ${jpid} Nobody.rpc_stream -`)
    check('C caller of a name the js peer does not serve fails at once', r.startsWith('err stream '), r)
    check('the js stream server saw no bad frame from the C caller', stats.bad === 0, JSON.stringify(stats))
  } finally {
    await js?.stop()
    const code = await c.stop()
    check('the C stream peer exits 0 at the end of its stdin', code === 0, `exit ${code}; stderr: ${c.stderr()}`)
  }
}

// Petals' ReachabilityProtocol.rpc_check (doc/net-hivemind.md "Reachability check") on the C
// peer, asked by a js peer that serves rpc_check itself (as a Petals server does): the C peer
// must dial the js peer back on a NEW connection and call rpc_check(node_id = js) there.
const CHECK = 'ReachabilityProtocol.rpc_check'
async function reachability () {
  const c = child(cPeer, [])
  let node = null
  try {
    const head = await c.start()
    const target = multiaddr(head.listen)
    node = await createNode()
    const me = node.peerId.toMultihash().bytes
    let selfChecks = 0, inbound = 0
    node.addEventListener('connection:open', (e) => { if (e.detail.direction === 'inbound') inbound++ })
    await serveUnary(node, CHECK, async (req) => {
      const r = decodePb(pb.PingRequest, req)
      if (Buffer.from(r.peer?.node_id ?? []).equals(Buffer.from(me))) selfChecks++
      return encodePb(pb.PingResponse, { available: true })
    })
    const ask = async (nodeId) => decodePb(pb.PingResponse,
      await callUnary(node, target, CHECK, encodePb(pb.PingRequest, { peer: { node_id: nodeId } }), 15000))
    await node.dial(target)
    await new Promise((resolve) => setTimeout(resolve, 1000))  // the C peer's identify of us
    const cId = peerIdFromString(head['peer-id']).toMultihash().bytes
    let r = await ask(cId)
    check('C rpc_check for its own id answers available=true without dialling', r.available === true && inbound === 0)
    let text = ''
    try { await ask((await createNode()).peerId.toMultihash().bytes) } catch (e) { text = e instanceof HandlerError ? e.message : String(e) }
    check('C rpc_check for a third peer is refused with a PermissionError', /PermissionError\('rpc_check: this node checks only the caller/.test(text), text)
    r = await ask(me)
    check('C rpc_check dials the js caller back on a new connection: available=true',
      r.available === true && inbound >= 1 && selfChecks === 1, `available=${r.available} inbound=${inbound} selfChecks=${selfChecks}`)
    // the C peer closes its probe connection after the check, but js-libp2p may still list
    // it and open the next stream there ("muxer is closed"): drop it on our side too
    for (const conn of node.getConnections(peerIdFromString(head['peer-id']))) {
      if (conn.direction === 'inbound') await conn.close().catch(() => {})
    }
    text = ''
    try { await ask(me) } catch (e) { text = e instanceof HandlerError ? e.message : String(e) }
    check('C rpc_check again at once is rate limited with a RuntimeError', /RuntimeError\('rpc_check: one check per peer/.test(text), text)
  } finally {
    if (node) await node.stop()
    await c.stop()
  }
}

// An exception inside a part (a peer that does not start, a call that times out) is one FAIL
// line for that part; the next part still runs.
async function part (name, fn) {
  try { await fn() } catch (e) { check(`${name} ran to the end`, false, e.stack ?? String(e)) }
}
const t0 = Date.now()
await part('byte vectors', vectors)
await part('js client -> C server', jsClientCServer)
await part('C client -> js server', cClientJsServer)
await part('stream calls, both directions', streamCalls)
await part('reachability check', reachability)
console.log(`hivemind interop: ${failed ? failed + ' FAILED' : 'all passed'} (${((Date.now() - t0) / 1000).toFixed(1)} s)`)
process.exit(failed ? 1 : 0)
