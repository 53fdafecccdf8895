#!/usr/bin/env node
// hivemind averaging interop on 127.0.0.1 (doc/ml-avg.md "On the network"): an independent js
// peer (js-libp2p + protobufjs built from proto/hivemind/averaging.proto, the stream framing of
// hivemind-lib.mjs, @msgpack/msgpack and node's SHA-1; no C code) joins a `kwnode average`
// process as a CLIENT:
//   schema_hash: hivemind's compute_schema_hash (averager.py @ 4bd43b7) computed here,
//     SHA-1(msgpack([{size: "torch.Size([N])", dtype: "torch.float32", layout: "torch.strided",
//     device: "cpu", requires_grad: "False", pin_memory: "False", compression: "0"}])), and
//     for N=1000 equal to the vector derived by hand in tests/unit/app/test_avg_net.c;
//   rpc_download_state (before the round): every DownloadData decodes with protobufjs and
//     re-encodes to the bytes the C node sent; the metadata (first message only) is msgpack
//     {group_key: ""}; the pieces are hivemind's split_for_streaming of the tensor (64 KiB of
//     buffer each, the first with size, dtype float32, compression NONE and the chunk count)
//     and join to the process's input bytes;
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
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { decode as msgpackDecode, encode as msgpackEncode } from '@msgpack/msgpack'
import protobuf from 'protobufjs'
import { createNode, callStream, mpDecode, multiaddr } from './hivemind-lib.mjs'

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
const DownloadRequest = root.lookupType('kw.hivemind.DownloadRequest')
const DownloadData = root.lookupType('kw.hivemind.DownloadData')
const enc = (T, o) => Buffer.from(T.encode(T.fromObject(o)).finish())
const ACCEPTED = 2, BEGIN_ALLREDUCE = 3, PART_FOR_AVERAGING = 4, AVERAGED_PART = 5

// hivemind's schema_hash of one float32 CPU tensor of shape [n]: str() of every field of
// TensorDescriptor.from_tensor, in the dataclass's field order, hashed as DHTID.generate does
function schemaHash (n) {
  const d = { size: `torch.Size([${n}])`, dtype: 'torch.float32', layout: 'torch.strided',
    device: 'cpu', requires_grad: 'False', pin_memory: 'False', compression: '0' }
  return createHash('sha1').update(msgpackEncode([d])).digest()
}
check('schema_hash of a float32[1000] equals the hand-derived vector',
  schemaHash(1000).toString('hex') === '228ccd6af026bc510bf63bb0c51fdbcfa434476a',
  schemaHash(1000).toString('hex'))

const N = 40000   // 160000 bytes: three state pieces of 64 KiB, 64 KiB and 29 KiB; one part
const CHUNK = 65536
const PREFIX = 'jsavg'
const dir = mkdtempSync(join(tmpdir(), 'kwavg-js-'))
const ours = new Float32Array(N), theirs = new Float32Array(N)
for (let i = 0; i < N; i++) { theirs[i] = (i % 1000) * 0.5 - 100; ours[i] = Math.sin(i) * 3 }
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

  // ---- rpc_download_state (the C node is still looking for a group) ----
  const dl = await callStream(node, multiaddr(addr),
    `${PREFIX}::DecentralizedAverager.rpc_download_state`, [enc(DownloadRequest, {})], 15000)
  const dd = dl.map((b) => DownloadData.decode(b))
  const pieces = Math.ceil(N * 4 / CHUNK)
  check(`rpc_download_state: ${pieces} DownloadData messages`, dd.length === pieces, `${dd.length}`)
  check('every DownloadData re-encodes (protobufjs) to the bytes the C node sent',
    dl.every((b, i) => enc(DownloadData, DownloadData.toObject(dd[i])).equals(b)))
  const meta = dd[0]?.metadata?.length ? msgpackDecode(dd[0].metadata) : undefined
  check('metadata in the first message only: msgpack {group_key: ""}',
    dd.length > 0 && Buffer.from(dd[0].metadata).equals(Buffer.from('81a967726f75705f6b6579a0', 'hex')) &&
    meta?.group_key === '' && dd.slice(1).every((m) => !m.metadata?.length), JSON.stringify(meta))
  const t0 = dd[0]?.tensor_part ?? {}
  check('first piece: size [N], dtype float32, compression NONE, chunks = piece count',
    JSON.stringify(t0.size) === JSON.stringify([N]) && t0.dtype === 'float32' &&
    (t0.compression ?? 0) === 0 && t0.chunks === pieces && !t0.requires_grad, JSON.stringify({ ...t0, buffer: undefined }))
  check('later pieces: buffer only (split_for_streaming)', dd.slice(1).every((m) =>
    m.tensor_part && !m.tensor_part.dtype && !m.tensor_part.size?.length && !m.tensor_part.chunks))
  check('pieces of 64 KiB, the last one shorter', dd.every((m, i) =>
    m.tensor_part?.buffer?.length === (i < pieces - 1 ? CHUNK : N * 4 - CHUNK * (pieces - 1))))
  const state = Buffer.concat(dd.map((m) => Buffer.from(m.tensor_part?.buffer ?? [])))
  check('the joined pieces are the C process\'s tensor, byte for byte',
    state.equals(Buffer.from(theirs.buffer)))

  // ---- rpc_join_group ----
  // kwnode average's schema: hivemind's, computed here from the source's strings
  const schema = schemaHash(N)
  const gather = Buffer.from('93c001c401c0', 'hex')   // [None, CLIENT, msgpack(None)]
  const joinReq = { schema_hash: schema, expiration: Date.now() / 1000 + 30, gather,
    client_mode: true, group_key: `${PREFIX}.0b` }
  // another schema: refused with BAD_SCHEMA_HASH, and the leader goes on looking
  const bad = await callStream(node, multiaddr(addr),
    `${PREFIX}::DecentralizedAverager.rpc_join_group`,
    [enc(JoinRequest, { ...joinReq, schema_hash: schemaHash(7) })], 15000)
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
