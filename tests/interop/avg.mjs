#!/usr/bin/env node
// hivemind averaging interop on 127.0.0.1 (doc/ml-avg.md "On the network"): an independent js
// peer (js-libp2p + protobufjs built from proto/hivemind/averaging.proto, the stream framing of
// hivemind-lib.mjs; no C code) joins a `kwnode average` process as a CLIENT:
//   rpc_join_group: a JoinRequest with another schema is refused (BAD_SCHEMA_HASH), ours
//     (protobufjs) is accepted; every MessageFromLeader the C
//     leader sends decodes with protobufjs and re-encodes to the same bytes; BEGIN_ALLREDUCE
//     holds a 20-byte group id, both PeerIDs and msgpack gather entries;
//   rpc_aggregate_part: our AveragingData part (protobufjs) is reduced; the AVERAGED_PART the
//     C reducer returns re-encodes to the same bytes and is the exact delta mean - ours; the C
//     process writes the mean of both tensors.
//
//   node tests/interop/avg.mjs <kwnode>
//
// Prints one `ok`/`FAIL` line per check; exit 1 when any failed.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'
import { createNode, callStream, dhtId, mpDecode, multiaddr } from './hivemind-lib.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const kwnode = process.argv[2]
if (!kwnode) { console.error('usage: avg.mjs <kwnode>'); process.exit(2) }

let failed = 0
function check (name, cond, detail = '') {
  if (cond) console.log(`ok   ${name}`)
  else { failed++; console.log(`FAIL ${name}${detail ? ': ' + detail : ''}`) }
}

const root = new protobuf.Root()
root.resolvePath = (origin, target) => resolve(here, '../../proto', target)
root.loadSync(['hivemind/averaging.proto'], { keepCase: true })
const JoinRequest = root.lookupType('kw.hivemind.JoinRequest')
const MessageFromLeader = root.lookupType('kw.hivemind.MessageFromLeader')
const AveragingData = root.lookupType('kw.hivemind.AveragingData')
const enc = (T, o) => Buffer.from(T.encode(T.fromObject(o)).finish())
const ACCEPTED = 2, BEGIN_ALLREDUCE = 3, PART_FOR_AVERAGING = 4, AVERAGED_PART = 5

const N = 1000
const PREFIX = 'jsavg'
const dir = mkdtempSync(join(tmpdir(), 'kwavg-js-'))
const ours = new Float32Array(N), theirs = new Float32Array(N)
for (let i = 0; i < N; i++) { theirs[i] = i * 0.5 - 100; ours[i] = Math.sin(i) * 3 }
writeFileSync(join(dir, 'in.bin'), Buffer.from(theirs.buffer))

const proc = spawn(kwnode, ['average', '--size', String(N), '--input', join(dir, 'in.bin'),
  '--output', join(dir, 'out.bin'), '--data-dir', join(dir, 'id'), '--prefix', PREFIX,
  '--listen', '/ip4/127.0.0.1/tcp/0', '--group-size', '2', '--min-group', '2',
  '--match-ms', '8000', '--timeout-ms', '20000'], { stdio: ['ignore', 'pipe', 'pipe'] })
let errText = ''
proc.stderr.on('data', (d) => { errText = (errText + d).slice(-3000) })
const exited = new Promise((res) => proc.on('exit', (code) => res(code)))
const lines = []
createInterface({ input: proc.stdout }).on('line', (l) => lines.push(l))
async function line (re, ms = 10000) {
  const end = Date.now() + ms
  for (;;) {
    const l = lines.find((x) => re.test(x))
    if (l) return l
    if (Date.now() > end) throw new Error(`no line ${re} from kwnode average: ${errText}`)
    await new Promise((res) => setTimeout(res, 20))
  }
}

let node
try {
  const addr = (await line(/^listen /)).split(' ')[1]
  node = await createNode()
  const me = Buffer.from(node.peerId.toMultihash().bytes)
  const them = Buffer.from((await node.dial(multiaddr(addr))).remotePeer.toMultihash().bytes)

  // ---- rpc_join_group ----
  // kwnode average's schema: the DHTID of its description of the tensor
  const schema = dhtId(`float32[${N}] compression=0 part_bytes=524288`)
  const gather = Buffer.from('93c001c401c0', 'hex')   // [None, CLIENT, msgpack(None)]
  const joinReq = { schema_hash: schema, expiration: Date.now() / 1000 + 30, gather,
    client_mode: true, group_key: `${PREFIX}.0b` }
  // another schema: refused with BAD_SCHEMA_HASH, and the leader goes on looking
  const bad = await callStream(node, multiaddr(addr),
    `${PREFIX}::DecentralizedAverager.rpc_join_group`,
    [enc(JoinRequest, { ...joinReq, schema_hash: dhtId('float32[7]') })], 15000)
  check('a JoinRequest with another schema is answered BAD_SCHEMA_HASH',
    bad.length === 1 && MessageFromLeader.decode(bad[0]).code === 9,
    JSON.stringify(bad.map((b) => MessageFromLeader.decode(b).code)))
  const replies = await callStream(node, multiaddr(addr),
    `${PREFIX}::DecentralizedAverager.rpc_join_group`, [enc(JoinRequest, joinReq)], 15000)
  const msgs = replies.map((b) => MessageFromLeader.decode(b))
  check('the C leader answers ACCEPTED, then BEGIN_ALLREDUCE',
    msgs.length === 2 && msgs[0].code === ACCEPTED && msgs[1].code === BEGIN_ALLREDUCE,
    JSON.stringify(msgs.map((m) => m.code)))
  check('every MessageFromLeader re-encodes (protobufjs) to the bytes the C node sent',
    replies.every((b, i) => enc(MessageFromLeader, MessageFromLeader.toObject(msgs[i])).equals(b)))
  const begin = msgs[1] ?? {}
  const ids = (begin.ordered_peer_ids ?? []).map((b) => Buffer.from(b))
  check('BEGIN_ALLREDUCE: 20-byte group id, both PeerIDs, one gathered entry each',
    begin.group_id?.length === 20 && ids.length === 2 && ids.some((b) => b.equals(me)) &&
    ids.some((b) => b.equals(them)) && begin.gathered?.length === 2)
  const mine = ids.findIndex((b) => b.equals(me))
  const g = (begin.gathered ?? []).map((b) => mpDecode(Buffer.from(b)))
  check('gathered: our own gather bytes, and the leader\'s [None, NODE, msgpack(None)]',
    mine >= 0 && Buffer.from(begin.gathered[mine]).equals(gather) &&
    Array.isArray(g[1 - mine]) && g[1 - mine][0] === null && g[1 - mine][1] === 0,
    JSON.stringify(g))

  // ---- rpc_aggregate_part: we are a CLIENT, the C node reduces everything ----
  const part = { code: PART_FOR_AVERAGING, group_id: begin.group_id, weight: 1.0,
    tensor_part: { buffer: Buffer.from(ours.buffer), size: [N], dtype: 'float32', compression: 0 } }
  const out = await callStream(node, multiaddr(addr),
    `${PREFIX}::DecentralizedAverager.rpc_aggregate_part`, [enc(AveragingData, part)], 15000)
  const d = out.map((b) => AveragingData.decode(b))
  check('one AVERAGED_PART back', d.length === 1 && d[0].code === AVERAGED_PART,
    JSON.stringify(d.map((m) => m.code)))
  check('the AveragingData re-encodes (protobufjs) to the bytes the C node sent',
    out.length === 1 && enc(AveragingData, AveragingData.toObject(d[0])).equals(out[0]))
  let worst = Infinity
  if (d.length === 1 && d[0].tensor_part?.dtype === 'float32') {
    const b = Buffer.from(d[0].tensor_part.buffer)
    const delta = new Float32Array(b.buffer, b.byteOffset, b.length / 4)
    worst = 0
    for (let i = 0; i < N; i++) {
      const mean = (Math.fround(ours[i]) + Math.fround(theirs[i])) / 2
      worst = Math.max(worst, Math.abs(ours[i] + delta[i] - mean))
    }
  }
  check('the delta brings our part to the mean of both', worst < 1e-4, `largest error ${worst}`)
  const code = await exited
  check('kwnode average exits 0', code === 0, errText)
  const ob = readFileSync(join(dir, 'out.bin'))
  const got = new Float32Array(ob.buffer, ob.byteOffset, ob.length / 4)
  let w2 = 0
  for (let i = 0; i < N; i++) w2 = Math.max(w2, Math.abs(got[i] - (ours[i] + theirs[i]) / 2))
  check('the C process wrote the mean of both tensors', got.length === N && w2 < 1e-4, `${w2}`)
} catch (e) {
  check('averaging with kwnode average', false, e.stack)
} finally {
  if (node) await node.stop()
  proc.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
}
console.log(failed ? `${failed} failed` : 'all passed')
process.exit(failed ? 1 : 0)
